import { TASK_LIMIT, TIMER_LIMIT } from './errors.js'

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
 *   $5 {name, version, config, maxTimers, maxRequests, caps}, a copy; caps: {publish|shadow|invoke: {limit, max, key}}
 *
 * It returns the entry points the host calls (each host entry runs under a time limit):
 * bind(handlerName), run(callId, event, isStart), settle(requestId, ok, value), fire(timerId, cancel).
 *
 * Built-ins are captured up front so a bundled polyfill that replaces Promise, JSON or Map does
 * not break ctx. That is robustness, not security: the host checks everything it receives.
 */
export const PRELUDE_SOURCE = String.raw`
'use strict'
const hostRequest = $0, hostDone = $1, hostLog = $2, hostTimer = $3, hostCbor = $4, info = $5
const { freeze, isFrozen, keys, create } = Object
const { apply } = Reflect
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

// Plain strings only: this crosses to the host, which re-checks every field.
function describe(thrown) {
  try {
    if (typeof thrown !== 'object' || thrown === null) return { name: 'Error', message: text(thrown) }
    const { name, message, code, stack } = thrown
    return {
      name: typeof name === 'string' ? name : 'Error',
      message: typeof message === 'string' ? message : text(thrown),
      code: typeof code === 'string' ? code : undefined,
      stack: typeof stack === 'string' ? stack : undefined,
    }
  } catch {
    return { name: 'Error', message: '[unprintable thrown value]' }
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
      hostRequest(id, method, args)
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

function fieldsOf(fields) {
  if (fields === undefined || fields === null) return undefined
  try { return parse(stringify(fields)) } catch { return { fields: text(fields) } }
}

function writeLog(level, message, fields) {
  hostLog(level, text(message), fieldsOf(fields))
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
  const outcome = hostCbor(op, value)
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

// cancel: the host gave up on this timer (its callback hit the CPU limit); forget it unrun.
function fire(id, cancel) {
  const timer = timers[id]
  if (timer === undefined) return
  if (!timer.repeat || cancel) {
    delete timers[id]
    liveTimers--
  }
  if (cancel) return
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
  try {
    hostDone(callId, 'ok', value)
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

return freeze({ bind, run, settle, fire })
`
