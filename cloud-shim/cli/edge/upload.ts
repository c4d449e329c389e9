import { createReadStream, statSync } from 'node:fs'
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { ApiError, messageOf, parseJson, type CloudClient } from './client.js'

/**
 * POSTs a file as the raw request body, reporting bytes as the socket takes them, which is what
 * a progress line should show (fetch would only tell when the whole body is gone).
 */
export async function uploadFile(client: CloudClient, path: string, file: string, onProgress: (sent: number, total: number) => void): Promise<{ status: number; body: unknown }> {
  const total = sizeOf(file)
  const url = client.url(path)
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest
  const req = send(url, {
    method: 'POST',
    headers: client.headers({ 'content-type': 'application/octet-stream', 'content-length': String(total) }),
  })
  const response = responseOf(req, client.baseUrl)
  // A failed write needs no handling of its own: it ends as the request's error or the server's early answer.
  sendBody(req, file, (sent) => onProgress(sent, total)).catch(() => {})
  const res = await response
  const body = parseJson(await readAll(res))
  const status = res.statusCode ?? 0
  if (status < 200 || status >= 300) throw new ApiError(status, messageOf(body) ?? `HTTP ${status}`, body)
  return { status, body }
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

async function sendBody(req: ClientRequest, file: string, onSent: (sent: number) => void): Promise<void> {
  let sent = 0
  for await (const chunk of createReadStream(file)) {
    await write(req, chunk as Buffer)
    sent += (chunk as Buffer).length
    onSent(sent)
  }
  req.end()
}

function write(req: ClientRequest, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => req.write(chunk, (err) => (err ? reject(err) : resolve())))
}

/** The server may answer (413, 4xx) before the body is sent; that answer wins over a write error. */
function responseOf(req: ClientRequest, base: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    req.once('response', resolve)
    req.once('error', (err) => reject(new Error(`cannot reach the cloud shim at ${base}: ${err.message}`)))
  })
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of res) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
