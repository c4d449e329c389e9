export { Broker, type BrokerOptions, type LocalBus, type MessageHandler } from './broker.js'
export { listenTcp, listenTls, listenWebSocket, started, type Listener, type ListenAddress, type TlsMaterial } from './listeners.js'
export { PolicyEngine, DEFAULT_DEVICE_POLICY, type Policy, type Principal } from './policy.js'
export type { Identity, AuthMethod } from './identity.js'
