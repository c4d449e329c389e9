/**
 * The deploy agent: the coordinator's half of fleet deployments. It watches the coordinator's own
 * named shadow `deployment` in the cloud through the CloudLink, runs each new desired revision
 * (run.ts), and reports progress in reported state through the durable outbox, so reports survive
 * kill -9 and link loss. See README.md for the protocol and the state machine.
 */
import type { Clock } from '../core/clock.js'
import { K, type Logger } from '../core/log.js'
import type { CloudLink, LinkState, Outbox } from '../cloud/index.js'
import { deploymentTopic, parseDesiredDeployment, type DeploymentReport, type DesiredDeployment } from '../protocol/index.js'
import type { BundleFiles } from '../tasks/bundle-files.js'
import type { TaskService } from '../tasks/index.js'
import type { TaskStore } from '../tasks/task-store.js'
import { reportOf, RevisionRun, type RunContext } from './run.js'
import type { DeployJournal } from './state.js'

export interface DeployAgentOptions {
  thingName: string
  link: Pick<CloudLink, 'subscribe' | 'onState' | 'publishNow' | 'state'>
  outbox: Pick<Outbox, 'enqueue'>
  tasks: TaskService
  store: TaskStore
  files: BundleFiles
  journal: DeployJournal
  /** Partial downloads, kept across restarts for Range resume. */
  tmpDir: string
  maxBundleBytes: number
  healthCheckMs: number
  downloadAttempts: number
  clock: Clock
  log: Logger
}

/** Until an answer comes, a `get` is asked again this often (the first may beat our SUBSCRIBE). */
const GET_RETRY_MS = 3000
/** A report the cloud refused for load (429) or a fault (500) is sent again after this. */
const RESEND_MS = 1000
/** Above telemetry, so a deep telemetry backlog never holds a deployment's outcome back. */
const REPORT_PRIORITY = 5

const object = (v: unknown): Record<string, unknown> | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined

export class DeployAgent {
  readonly #o: DeployAgentOptions
  readonly #ctx: RunContext
  readonly #unsubscribe: Array<() => Promise<void> | void> = []
  #wanted: DesiredDeployment | undefined
  #current: { revision: number; abort: AbortController } | undefined
  #loop: Promise<void> | undefined
  #answered = true
  #getTimer: NodeJS.Timeout | undefined
  #resendTimer: NodeJS.Timeout | undefined
  #lastReport: DeploymentReport | undefined
  #closed = false

  private constructor(o: DeployAgentOptions) {
    this.#o = o
    this.#ctx = { ...o, report: (r) => this.#report(r), online: (signal) => this.#online(signal) }
  }

  static async start(o: DeployAgentOptions): Promise<DeployAgent> {
    const agent = new DeployAgent(o)
    await agent.#start()
    return agent
  }

  async #start(): Promise<void> {
    const { journal, link, thingName } = this.#o
    // Truth first: how the latest revision ended (recovery at start-up may just have ended it).
    const latest = journal.latest()
    if (latest !== undefined && latest.phase !== 'superseded' && latest.phase !== 'downloading' && latest.phase !== 'staging') {
      this.#report(reportOf(latest, latest.phase, latest.tasks, latest.error, this.#o.clock))
    }
    const on = (status: 'accepted' | 'rejected', op: 'get' | 'update') => deploymentTopic(thingName, op, status)
    this.#unsubscribe.push(
      await link.subscribe(deploymentTopic(thingName, 'update', 'delta'), (_t, p) => this.#onDelta(p)),
      await link.subscribe(on('accepted', 'get'), (_t, p) => this.#onGetAccepted(p)),
      await link.subscribe(on('rejected', 'get'), (_t, p) => this.#onGetRejected(p)),
      await link.subscribe(on('rejected', 'update'), (_t, p) => this.#onUpdateRejected(p)),
      link.onState((state) => this.#onLinkState(state)),
    )
    if (link.state === 'connected') this.#askForDesired()
    // An interrupted download resumes without waiting for the cloud to answer.
    const unfinished = journal.unfinished().at(-1)
    if (unfinished !== undefined) this.#offer(unfinished.target)
  }

  /** Stops at the next step boundary; an apply cut short is rolled back at the next start. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#getTimer)
    clearTimeout(this.#resendTimer)
    this.#current?.abort.abort(new Error('the coordinator is stopping'))
    for (const u of this.#unsubscribe.splice(0)) await u()
    await this.#loop
  }

  #onLinkState(state: LinkState): void {
    if (state === 'connected') this.#askForDesired()
    else clearInterval(this.#getTimer)
  }

  /** On every (re)connect: an offline coordinator learns here what it missed. */
  #askForDesired(): void {
    this.#answered = false
    clearInterval(this.#getTimer)
    const ask = (): void => {
      if (this.#answered || this.#closed) return clearInterval(this.#getTimer)
      this.#o.link.publishNow(deploymentTopic(this.#o.thingName, 'get'), JSON.stringify({ clientToken: 'deploy-agent' }))
    }
    // After the link's own resubscription, which runs right after the state listeners.
    setImmediate(ask)
    this.#getTimer = setInterval(ask, GET_RETRY_MS).unref()
  }

  /** A delta is only a doorbell: the full desired document comes from a get. */
  #onDelta(payload: Buffer): void {
    const revision = object(object(parse(payload))?.['state'])?.['revision']
    if (typeof revision === 'number' && revision > this.#known()) this.#askForDesired()
  }

  #onGetAccepted(payload: Buffer): void {
    this.#answered = true
    const desired = object(object(parse(payload))?.['state'])?.['desired']
    if (desired === undefined) return
    const parsed = parseDesiredDeployment(desired)
    if (!parsed.ok) {
      this.#o.log.warn({ errors: parsed.errors }, 'desired deployment is malformed; ignored')
      return
    }
    this.#offer(parsed.value)
  }

  #onGetRejected(payload: Buffer): void {
    // 404: no deployment was ever written for us, which is an answer too.
    if (object(parse(payload))?.['code'] === 404) this.#answered = true
  }

  #onUpdateRejected(payload: Buffer): void {
    const body = object(parse(payload))
    const code = body?.['code']
    this.#o.log.warn({ code, message: body?.['message'] }, 'deployment report refused by the cloud')
    if ((code !== 429 && code !== 500 && code !== 503) || this.#lastReport === undefined) return
    clearTimeout(this.#resendTimer)
    this.#resendTimer = setTimeout(() => {
      if (this.#lastReport !== undefined && !this.#closed) this.#enqueue(this.#lastReport)
    }, RESEND_MS)
  }

  #online(signal: AbortSignal): Promise<void> {
    if (this.#o.link.state === 'connected' || signal.aborted) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const off = this.#o.link.onState((state) => {
        if (state !== 'connected') return
        off()
        resolve()
      })
      signal.addEventListener('abort', () => {
        off()
        reject(signal.reason as Error)
      }, { once: true })
    })
  }

  #known(): number {
    return Math.max(this.#o.journal.maxFinished(), this.#current?.revision ?? 0, this.#wanted?.revision ?? 0)
  }

  /** A newer revision replaces whatever waits and supersedes what runs, at its next step boundary. */
  #offer(d: DesiredDeployment): void {
    if (this.#closed || d.revision <= this.#known()) return
    this.#wanted = d
    this.#current?.abort.abort(new Error(`superseded by revision ${d.revision}`))
    this.#kick()
  }

  #kick(): void {
    this.#loop ??= this.#drain().finally(() => {
      this.#loop = undefined
      if (this.#wanted !== undefined && !this.#closed) this.#kick()
    })
  }

  async #drain(): Promise<void> {
    for (let d = this.#wanted; d !== undefined && !this.#closed; d = this.#wanted) {
      this.#wanted = undefined
      const abort = new AbortController()
      this.#current = { revision: d.revision, abort }
      try {
        await new RevisionRun(this.#ctx, d, abort.signal, () => this.#closed).run()
      } catch (err) {
        if (!this.#closed) this.#o.log.error({ revision: d.revision, [K.err]: (err as Error).message }, 'deployment revision stopped unexpectedly')
      } finally {
        this.#current = undefined
      }
    }
  }

  #report(r: DeploymentReport): void {
    this.#lastReport = r
    this.#enqueue(r)
  }

  #enqueue(r: DeploymentReport): void {
    const payload = Buffer.from(JSON.stringify({ state: { reported: r } }))
    const res = this.#o.outbox.enqueue({ topic: deploymentTopic(this.#o.thingName, 'update'), payload, qos: 1, priority: REPORT_PRIORITY })
    if (!res.accepted) this.#o.log.warn({ reason: res.reason, revision: r.revision, status: r.status }, 'deployment report refused by the outbox')
  }
}

function parse(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'))
  } catch {
    return undefined
  }
}
