/**
 * Loaded into every test worker and, through NODE_OPTIONS, every Node child a test spawns: a listen
 * on one of the daemons' default ports throws, so the suite never collides with (or becomes) a
 * coordinator or cloud shim a developer runs on the same machine.
 */
import net from 'node:net'

export const DEFAULT_PORTS = new Set([1883, 8883, 8083, 8087, 1884, 8884, 8090])

const listen = net.Server.prototype.listen
net.Server.prototype.listen = function guardedListen(...args) {
  const first = args[0]
  const port = typeof first === 'object' && first !== null ? first.port : first
  if (DEFAULT_PORTS.has(Number(port))) {
    throw new Error(`a test listened on default port ${port}; tests listen on port 0 (127.0.0.1) and read the port back`)
  }
  return listen.apply(this, args)
}
