export { openDatabase, migrate, type Db, type OpenOptions } from './db.js'
export { DeviceStore, type DeviceRecord } from './device-store.js'
export { ShadowStore, type StoredShadow } from './shadow-store.js'
export { createBrokerPersistence, type SqliteBrokerPersistence, type BrokerPersistenceOptions } from './broker-persistence.js'
