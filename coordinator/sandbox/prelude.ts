import { BRIDGE_LIMIT, TASK_LIMIT, TIMER_LIMIT } from './errors.js'

/**
 * The isolate half of the bridge, run once per isolate before the task's bundle, as the body of a
 * closure (`evalClosure`) so the raw host callbacks only ever exist as its arguments: they are
 * never globals, and task code cannot reach them. They are isolated-vm Callbacks, i.e. plain
 * functions here whose arguments and results are copies.
 *
 *   $0 request(id, method, args)  ignored: starts a host call; its outcome comes back via settle()
 *   $1 done(callId, status, value) ignored: a handler's result ('ok'), throw ('threw') or an
 *                                  uncopyable result ('unclonable')
 *   $2 log(level, message, fields) ignored
 *   $3 timer(op, id, delay, repeat) ignored: 'set' or 'clear'
 *   $4 cbor(op, value)             sync: {ok, value} or {ok: false, message, code}
 *   $5 {name, version, config, maxTimers, maxBridgeBytes, maxRequests, caps}, a copy; caps: {publish|shadow|invoke: {limit, max, key}}
 *   $6 limit(what)                 ignored: a value leaving the isolate was refused for its size
 *
 * It returns the entry points the host calls (each host entry runs under a time limit):
 * bind(handlerName), run(callId, event, isStart), settle(requestId, ok, value), fire(timerId),
 * cancel(timerIds).
 *
 * Every value that leaves for the host (a result, host-call arguments, a cbor value) is first
 * measured and rebuilt here by bounded(): isolated-vm copies a callback's arguments before any
 * host code runs, so a size check on the host would come after the copy it is meant to prevent.
 * The rebuilt value holds only data properties, so what is copied is exactly what was measured
 * (a getter cannot answer differently the second time); shared objects count each time they
 * appear, as JSON would write them out on the host.
 *
 * Built-ins are captured up front so a bundled polyfill that replaces Promise, JSON or Map does
 * not break ctx. That is robustness, not security: the host checks everything it receives.
 */
export const PRELUDE_SOURCE = String.raw`
'use strict'
const hostRequest = $0, hostDone = $1, hostLog = $2, hostTimer = $3, hostCbor = $4, info = $5, hostLimit = $6
const { freeze, isFrozen, keys, create, getPrototypeOf, getOwnPropertyDescriptor } = Object
const { apply, defineProperty } = Reflect
const isArray = Array.isArray
const MapCtor = Map, SetCtor = Set, WeakMapCtor = WeakMap
const mapEntries = Map.prototype.entries, mapSet = Map.prototype.set
const mapIteratorNext = getPrototypeOf(new Map().entries()).next
const setValues = Set.prototype.values, setAdd = Set.prototype.add
const setIteratorNext = getPrototypeOf(new Set().values()).next
const weakGet = WeakMap.prototype.get, weakSet = WeakMap.prototype.set, weakDelete = WeakMap.prototype.delete
const dateTime = Date.prototype.getTime
const ObjectProto = Object.prototype, ArrayBufferProto = ArrayBuffer.prototype, DateProto = Date.prototype
const MapProto = Map.prototype, SetProto = Set.prototype
const SharedArrayBufferProto = typeof SharedArrayBuffer === 'function' ? SharedArrayBuffer.prototype : undefined
const typedBuffer = getOwnPropertyDescriptor(getPrototypeOf(Uint8Array.prototype), 'buffer').get
const dataViewBuffer = getOwnPropertyDescriptor(DataView.prototype, 'buffer').get
const bufferBytes = getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength').get
const sharedBytes = typeof SharedArrayBuffer === 'function' ? getOwnPropertyDescriptor(SharedArrayBuffer.prototype, 'byteLength').get : undefined
const PromiseCtor = Promise
const promiseThen = Promise.prototype.then
const ErrorCtor = Error, TypeErrorCtor = TypeError, StringCtor = String
const Uint8ArrayCtor = Uint8Array, ArrayBufferCtor = ArrayBuffer
const isView = ArrayBuffer.isView
const { stringify, parse } = JSON

const pending = create(null)
let nextRequest = 0
let pendingCount = 0
const timers = create(null)
let nextTimer = 0
let liveTimers = 0
let exported, handler, start

function text(value) {
  try { return StringCtor(value) } catch { return '[unprintable]' }
}

function taskError(message, code) {
  const e = new ErrorCtor(message)
  if (code !== undefined) e.code = code
  return e
}

// The host keeps 4000 characters of a message and 2000 of the task's frames; one more than it
// keeps still lets it mark a message as cut.
const MESSAGE_CHARS = 4001, STACK_CHARS = 16000, NAME_CHARS = 200
const clip = (s, n) => (s.length > n ? s.slice(0, n) : s)

// Plain, clipped strings only: this crosses to the host, which re-checks every field.
function describe(thrown) {
  try {
    if (typeof thrown !== 'object' || thrown === null) return { name: 'Error', message: clip(text(thrown), MESSAGE_CHARS) }
    const { name, message, code, stack } = thrown
    return {
      name: typeof name === 'string' ? clip(name, NAME_CHARS) : 'Error',
      message: clip(typeof message === 'string' ? message : text(thrown), MESSAGE_CHARS),
      code: typeof code === 'string' ? clip(code, NAME_CHARS) : undefined,
      stack: typeof stack === 'string' ? clip(stack, STACK_CHARS) : undefined,
    }
  } catch {
    return { name: 'Error', message: '[unprintable thrown value]' }
  }
}

// Thrown by snapshot() when the bound is passed; never escapes bounded().
const TOO_LARGE = freeze({})

function byteSize(value) {
  try { return apply(bufferBytes, value, []) } catch {}
  if (sharedBytes !== undefined) try { return apply(sharedBytes, value, []) } catch {}
  return -1
}

function viewBytes(view) {
  let buffer
  try { buffer = apply(typedBuffer, view, []) } catch { buffer = apply(dataViewBuffer, view, []) }
  return byteSize(buffer)
}

function isBrand(method, value) {
  try { apply(method, value, []); return true } catch { return false }
}

// A copy of value made of data properties only, charging 8 bytes per value, strings by length and
// views by their whole buffer (structured clone sends it all). Cycles stay cycles.
function snapshot(value, maxBytes) {
  let left = maxBytes
  const open = new WeakMapCtor()
  const charge = (n) => {
    left -= n
    if (left < 0) throw TOO_LARGE
  }
  const put = (target, key, v) => defineProperty(target, key, { value: v, writable: true, enumerable: true, configurable: true })
  const copy = (v) => {
    charge(8)
    if (typeof v === 'string') {
      charge(v.length)
      return v
    }
    if (typeof v !== 'object' || v === null) return v
    const cycle = apply(weakGet, open, [v])
    if (cycle !== undefined) return cycle
    // Plain objects and arrays first, by prototype: a brand check that fails throws, and an
    // exception per value would cost more than the copy.
    const proto = getPrototypeOf(v)
    let kind = isArray(v) ? 'array' : proto === ObjectProto || proto === null ? 'object' : undefined
    if (kind === undefined) {
      if (isView(v)) {
        charge(viewBytes(v))
        return v
      }
      const bytes = proto === ArrayBufferProto || proto === SharedArrayBufferProto ? byteSize(v) : -1
      if (bytes >= 0) {
        charge(bytes)
        return v
      }
      if (proto === DateProto && isBrand(dateTime, v)) return v
      kind = proto === MapProto && isBrand(mapEntries, v) ? 'map' : proto === SetProto && isBrand(setValues, v) ? 'set' : 'object'
    }
    const out = kind === 'array' ? [] : kind === 'map' ? new MapCtor() : kind === 'set' ? new SetCtor() : {}
    apply(weakSet, open, [v, out])
    if (kind === 'map') {
      const it = apply(mapEntries, v, [])
      for (let step = apply(mapIteratorNext, it, []); !step.done; step = apply(mapIteratorNext, it, [])) {
        apply(mapSet, out, [copy(step.value[0]), copy(step.value[1])])
      }
    } else if (kind === 'set') {
      const it = apply(setValues, v, [])
      for (let step = apply(setIteratorNext, it, []); !step.done; step = apply(setIteratorNext, it, [])) apply(setAdd, out, [copy(step.value)])
    } else if (kind === 'array') {
      const n = v.length
      for (let i = 0; i < n; i++) put(out, i, copy(v[i]))
    } else {
      const names = keys(v)
      for (let i = 0; i < names.length; i++) {
        charge(names[i].length)
        put(out, names[i], copy(v[names[i]]))
      }
    }
    apply(weakDelete, open, [v])
    return out
  }
  return copy(value)
}

// What may leave for the host; a refusal is reported to the host (it counts against the task)
// and thrown to the task as an Error with code ${TASK_LIMIT}.
function bounded(value, what) {
  try {
    return snapshot(value, info.maxBridgeBytes)
  } catch (e) {
    if (e !== TOO_LARGE) throw e
    hostLimit(what)
    const error = taskError(what + ' is larger than ' + info.maxBridgeBytes + ' bytes (${BRIDGE_LIMIT}); refused before copying', '${TASK_LIMIT}')
    error.limit = '${BRIDGE_LIMIT}'
    throw error
  }
}

function whenSettled(value, onValue, onError) {
  apply(promiseThen, new PromiseCtor((resolve) => resolve(value)), [onValue, onError])
}

// Which cap (info.caps) a request counts against.
const KIND = freeze(Object.assign(create(null), { publish: 'publish', getShadow: 'shadow', updateShadow: 'shadow', deleteShadow: 'shadow', invoke: 'invoke' }))
const caps = info.caps
const inFlight = create(null)
const reported = create(null)

function limitError(limit, count, key) {
  return taskError('task ' + stringify(info.name) + ' exceeded its limit ' + limit + ': ' + count + ' calls are awaiting the host, the most it may have' + (key === undefined ? '' : ' (' + key + ')'), '${TASK_LIMIT}')
}

// A task that does not await its requests is refused here, before their arguments are copied out
// and without a host round trip each. The host hears of it once per time the cap is reached, and
// counts it against the task (request id 0 expects no answer).
function refuse(reject, kind, limit, count, key) {
  if (!reported[kind]) {
    reported[kind] = true
    try { hostRequest(0, 'limitReached', [limit, count]) } catch {}
  }
  reject(limitError(limit, count, key))
}

function request(method, args) {
  return new PromiseCtor((resolve, reject) => {
    if (pendingCount >= info.maxRequests) return refuse(reject, 'all', 'requestsInFlight', pendingCount)
    const kind = KIND[method]
    const cap = kind === undefined ? undefined : caps[kind]
    const count = kind === undefined ? 0 : inFlight[kind] || 0
    if (cap !== undefined && count >= cap.max) return refuse(reject, kind, cap.limit, count, cap.key)
    const id = ++nextRequest
    pending[id] = { resolve, reject, kind }
    pendingCount++
    if (kind !== undefined) inFlight[kind] = count + 1
    try {
      hostRequest(id, method, bounded(args, 'a ' + method + ' request'))
    } catch (e) {
      release(id)
      reject(e)
    }
  })
}

function release(id) {
  const waiter = pending[id]
  delete pending[id]
  pendingCount--
  reported.all = false
  if (waiter.kind !== undefined) {
    inFlight[waiter.kind]--
    reported[waiter.kind] = false
  }
  return waiter
}

function settle(id, ok, value) {
  if (pending[id] === undefined) return
  const waiter = release(id)
  if (ok) waiter.resolve(value)
  else waiter.reject(taskError(value.message, value.code))
}

function payloadOf(payload) {
  if (typeof payload === 'string' || payload instanceof Uint8ArrayCtor) return payload
  if (isView(payload)) return new Uint8ArrayCtor(payload.buffer, payload.byteOffset, payload.byteLength)
  if (payload instanceof ArrayBufferCtor) return new Uint8ArrayCtor(payload)
  const json = stringify(payload)
  if (json === undefined) throw new TypeErrorCtor('publish payload must be a string, a Uint8Array or a JSON value')
  return json
}

const shadowName = (opts) => (opts === undefined || opts === null ? undefined : opts.name)

// The host keeps this much of a log line (bridge.ts); only that much crosses.
const LOG_CHARS = 8192

function fieldsOf(fields) {
  if (fields === undefined || fields === null) return undefined
  let json
  try { json = stringify(fields) } catch {}
  if (typeof json !== 'string') return { fields: clip(text(fields), LOG_CHARS) }
  if (json.length > info.maxBridgeBytes) return { fields: '[dropped: ' + json.length + ' characters of JSON, more than ${BRIDGE_LIMIT}]' }
  return parse(json)
}

function writeLog(level, message, fields) {
  hostLog(level, clip(text(message), LOG_CHARS), fieldsOf(fields))
}

function show(value) {
  if (typeof value === 'string') return value
  if (value instanceof ErrorCtor) return typeof value.stack === 'string' ? value.stack : text(value)
  try {
    const json = stringify(value)
    return json === undefined ? text(value) : json
  } catch {
    return text(value)
  }
}

function consoleWriter(level) {
  return (...args) => {
    let line = ''
    for (let i = 0; i < args.length; i++) line += (i === 0 ? '' : ' ') + show(args[i])
    writeLog(level, line)
  }
}

function viaHost(op, value) {
  const outcome = hostCbor(op, bounded(value, 'a cbor.' + op + ' value'))
  if (!outcome.ok) throw taskError(outcome.message, outcome.code)
  return outcome.value
}

function deepFreeze(value) {
  if (typeof value !== 'object' || value === null || isFrozen(value)) return value
  freeze(value)
  for (const key of keys(value)) deepFreeze(value[key])
  return value
}

const ctx = freeze({
  task: freeze({ name: info.name, version: info.version }),
  config: deepFreeze(info.config),
  publish: async (topic, payload, opts) => {
    await request('publish', [topic, payloadOf(payload), opts === undefined || opts === null ? 0 : opts.qos ?? 0])
  },
  shadow: freeze({
    get: async (thing, opts) => request('getShadow', [thing, shadowName(opts)]),
    update: async (thing, update, opts) => request('updateShadow', [thing, update, shadowName(opts)]),
    delete: async (thing, opts) => request('deleteShadow', [thing, shadowName(opts)]),
  }),
  devices: async () => request('listDevices', []),
  state: freeze({
    get: async (key) => request('kvGet', [key]),
    set: async (key, value) => {
      await request('kvSet', [key, value])
    },
    delete: async (key) => request('kvDelete', [key]),
    list: async (prefix = '') => request('kvList', [prefix]),
  }),
  log: freeze({
    debug: (message, fields) => writeLog('debug', message, fields),
    info: (message, fields) => writeLog('info', message, fields),
    warn: (message, fields) => writeLog('warn', message, fields),
    error: (message, fields) => writeLog('error', message, fields),
  }),
  invoke: async (task, payload) => request('invoke', [task, payload]),
  cbor: freeze({
    encode: (value) => viaHost('encode', value),
    decode: (bytes) => viaHost('decode', bytes),
  }),
})

function addTimer(callback, delay, args, repeat) {
  if (typeof callback !== 'function') throw new TypeErrorCtor('timer callback must be a function')
  if (liveTimers >= info.maxTimers) {
    throw taskError('too many live timers (the limit is ' + info.maxTimers + '); clear unused ones first', '${TIMER_LIMIT}')
  }
  const ms = +delay || 0
  const id = ++nextTimer
  timers[id] = { callback, args, repeat }
  liveTimers++
  hostTimer('set', id, ms, repeat)
  return id
}

function clearTimer(id) {
  if (typeof id !== 'number' || timers[id] === undefined) return
  delete timers[id]
  liveTimers--
  hostTimer('clear', id, 0, false)
}

function timerFailed(thrown) {
  const error = describe(thrown)
  hostLog('error', 'timer callback failed: ' + error.name + ': ' + error.message, { error })
}

function forget(id) {
  if (timers[id] === undefined) return
  delete timers[id]
  liveTimers--
}

// The host gave up on these timers (a limit, or the call that armed them failed): forget them unrun.
function cancel(ids) {
  for (let i = 0; i < ids.length; i++) forget(ids[i])
}

function fire(id) {
  const timer = timers[id]
  if (timer === undefined) return
  if (!timer.repeat) forget(id)
  try {
    const result = apply(timer.callback, undefined, timer.args)
    if (result instanceof PromiseCtor) apply(promiseThen, result, [undefined, timerFailed])
  } catch (e) {
    timerFailed(e)
  }
}

// A WebAssembly.Memory lives outside the V8 heap, where the isolate's memory limit does not reach:
// a 16 MB task could grow one to gigabytes. Tasks are JavaScript; wasm is not part of the API.
delete globalThis.WebAssembly

globalThis.setTimeout = (callback, delay, ...args) => addTimer(callback, delay, args, false)
globalThis.setInterval = (callback, delay, ...args) => addTimer(callback, delay, args, true)
globalThis.clearTimeout = clearTimer
globalThis.clearInterval = clearTimer
globalThis.console = freeze({
  debug: consoleWriter('debug'),
  log: consoleWriter('info'),
  info: consoleWriter('info'),
  warn: consoleWriter('warn'),
  error: consoleWriter('error'),
})

function bind(handlerName) {
  const found = globalThis.__edgeTask
  if (found === null || (typeof found !== 'object' && typeof found !== 'function')) {
    return { error: 'the bundle did not assign its exports to the global __edgeTask (build it as an IIFE with globalName __edgeTask)' }
  }
  const candidate = found[handlerName]
  if (typeof candidate !== 'function') {
    const names = keys(found).slice(0, 20).join(', ')
    return { error: 'it has no exported function "' + text(handlerName) + '" (exports: ' + (names || 'none') + ')' }
  }
  exported = found
  handler = candidate
  start = typeof found.start === 'function' ? found.start : undefined
  return { hasStart: start !== undefined }
}

function finish(callId, value) {
  let copy
  try {
    copy = snapshot(value, info.maxBridgeBytes)
  } catch (e) {
    hostDone(callId, e === TOO_LARGE ? 'limit' : 'unclonable', e === TOO_LARGE ? null : describe(e))
    return
  }
  try {
    hostDone(callId, 'ok', copy)
  } catch (e) {
    hostDone(callId, 'unclonable', describe(e))
  }
}

function run(callId, event, isStart) {
  let result
  try {
    result = isStart ? apply(start, exported, [ctx]) : apply(handler, exported, [event, ctx])
  } catch (e) {
    hostDone(callId, 'threw', describe(e))
    return
  }
  whenSettled(result, (value) => finish(callId, value), (e) => hostDone(callId, 'threw', describe(e)))
}

return freeze({ bind, run, settle, fire, cancel })
`
