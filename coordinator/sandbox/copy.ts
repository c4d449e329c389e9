import ivm from 'isolated-vm'

/**
 * Values enter the isolate by structured clone, which sends a typed array's whole backing buffer,
 * not just its view. A Node Buffer is often a view into a shared 8 KiB pool (or a broker packet,
 * or cbor-x's scratch buffer) holding unrelated data, so every view that does not span its whole
 * buffer is first copied to bytes of its own; a task must never see data it was not given. A
 * SharedArrayBuffer is copied too, since isolated-vm would share its memory with the isolate.
 */
export function toIsolate(value: unknown): ivm.Copy<unknown> {
  return new ivm.ExternalCopy(hasSharedView(value, new Set()) ? detach(value, new Map()) : value).copyInto({ release: true })
}

const sharesBuffer = (view: ArrayBufferView): boolean =>
  view.byteOffset !== 0 || view.byteLength !== view.buffer.byteLength || !(view.buffer instanceof ArrayBuffer)

function hasSharedView(value: unknown, seen: Set<object>): boolean {
  if (typeof value !== 'object' || value === null || seen.has(value)) return false
  seen.add(value)
  if (value instanceof SharedArrayBuffer) return true
  if (ArrayBuffer.isView(value)) return sharesBuffer(value)
  if (value instanceof Map) return [...value].some(([k, v]) => hasSharedView(k, seen) || hasSharedView(v, seen))
  if (value instanceof Set) return [...value].some((v) => hasSharedView(v, seen))
  return Object.values(value).some((v) => hasSharedView(v, seen))
}

/** A copy with every view on bytes of its own; `memo` keeps shared and cyclic structure intact. */
function detach(value: unknown, memo: Map<object, unknown>): unknown {
  if (typeof value !== 'object' || value === null) return value
  const known = memo.get(value)
  if (known !== undefined) return known
  if (ArrayBuffer.isView(value)) {
    const own = sharesBuffer(value) ? ownView(value) : value
    memo.set(value, own)
    return own
  }
  if (value instanceof SharedArrayBuffer) {
    const own = ownView(new Uint8Array(value)).buffer
    memo.set(value, own)
    return own
  }
  if (value instanceof Map) {
    const out = new Map<unknown, unknown>()
    memo.set(value, out)
    for (const [k, v] of value) out.set(detach(k, memo), detach(v, memo))
    return out
  }
  if (value instanceof Set) {
    const out = new Set<unknown>()
    memo.set(value, out)
    for (const v of value) out.add(detach(v, memo))
    return out
  }
  if (value instanceof Date || value instanceof RegExp || value instanceof ArrayBuffer) return value
  const out: Record<string, unknown> | unknown[] = Array.isArray(value) ? [] : {}
  memo.set(value, out)
  for (const [k, v] of Object.entries(value)) (out as Record<string, unknown>)[k] = detach(v, memo)
  return out
}

/** Buffers become plain Uint8Arrays: that is what the isolate sees anyway. */
function ownView(view: ArrayBufferView): ArrayBufferView {
  const bytes = new Uint8Array(view.byteLength)
  bytes.set(new Uint8Array(view.buffer, view.byteOffset, view.byteLength))
  if (view instanceof Uint8Array) return bytes
  if (view instanceof DataView) return new DataView(bytes.buffer)
  const Typed = view.constructor as new (buffer: ArrayBuffer) => ArrayBufferView
  return new Typed(bytes.buffer)
}

/**
 * Whether a host value would take more than `maxBytes` crossing into the isolate, measured the
 * way the prelude measures values leaving it: strings by length, bytes by their buffer's size,
 * 8 bytes per value plus each key's length. Shared objects count once, as structured clone sends
 * them once. Stops as soon as the bound is passed, so a huge value costs little to refuse.
 */
export function exceedsBridge(value: unknown, maxBytes: number): boolean {
  let left = maxBytes
  const seen = new Set<object>()
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const v = stack.pop()
    left -= 8
    if (typeof v === 'string') left -= v.length
    else if (typeof v === 'object' && v !== null && !seen.has(v)) {
      seen.add(v)
      if (ArrayBuffer.isView(v)) left -= v.buffer.byteLength
      else if (v instanceof ArrayBuffer || v instanceof SharedArrayBuffer) left -= v.byteLength
      else if (v instanceof Map) for (const [k, item] of v) stack.push(k, item)
      else if (v instanceof Set) for (const item of v) stack.push(item)
      else if (!(v instanceof Date) && !(v instanceof RegExp)) {
        for (const [k, item] of Object.entries(v)) {
          left -= k.length
          stack.push(item)
        }
      }
    }
    if (left < 0) return true
  }
  return false
}
