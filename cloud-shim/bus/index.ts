export { MqttBus, withoutCredentials, type MqttBusOptions } from './mqtt-bus.js'
