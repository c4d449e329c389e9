import { createReadStream, statSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { parseRange } from '../catalog/index.js'

/**
 * Sends an immutable, content-addressed file with byte-range support: `Range: bytes=N-` resumes
 * an interrupted download (206 + Content-Range), and `If-Range` with the ETag makes sure the
 * resumed part belongs to the same file. HEAD answers the headers alone.
 */
export function serveImmutableFile(req: IncomingMessage, res: ServerResponse, path: string, etag: string): void {
  const size = statSync(path).size
  const tag = `"${etag}"`
  const base = { 'etag': tag, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream', 'cache-control': 'public, max-age=31536000, immutable' }
  if (req.headers['if-none-match'] === tag) {
    res.writeHead(304, base).end()
    return
  }
  const ifRange = req.headers['if-range']
  const range = ifRange === undefined || ifRange === tag ? parseRange(req.headers.range, size) : { kind: 'full' as const }
  if (range.kind === 'unsatisfiable') {
    res.writeHead(416, { ...base, 'content-range': `bytes */${size}` }).end()
    return
  }
  const [start, end] = range.kind === 'partial' ? [range.start, range.end] : [0, size - 1]
  const headers = { ...base, 'content-length': String(Math.max(0, end - start + 1)), ...(range.kind === 'partial' ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}) }
  res.writeHead(range.kind === 'partial' ? 206 : 200, headers)
  if (req.method === 'HEAD' || size === 0) {
    res.end()
    return
  }
  const stream = createReadStream(path, { start, end })
  stream.on('error', () => res.destroy())
  stream.pipe(res)
}
