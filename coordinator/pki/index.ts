/** The coordinator's PKI: its own CA, broker/device certificates, and MQTT password tokens. */
export {
  createCa,
  issueServerCert,
  issueClientCert,
  certificateInfo,
  verifyIssuedBy,
  type KeyPairPem,
  type CaOptions,
  type ServerCertOptions,
  type ClientCertOptions,
  type CertInfo,
} from './ca.js'
export { generateToken, hashToken, verifyToken } from './tokens.js'
export { caFiles, checkCa, CaUnusableError, readCa, readServer, defaultServerHosts, initCa, type CaFiles } from './ca-files.js'
export { ensureApiToken } from './api-token.js'
