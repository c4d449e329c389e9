/**
 * The systemd notification protocol (sd_notify(3)) for a `Type=notify` unit with a watchdog.
 *
 * sd_notify writes a datagram to the unix socket named by $NOTIFY_SOCKET. Node cannot: `dgram`
 * has no unix-domain sockets and `net` only connects stream sockets (the notify socket is
 * SOCK_DGRAM), so without a native addon the datagram is sent by `systemd-notify`, which ships with
 * systemd itself. Since systemd 246 it waits until the manager has processed the message
 * (sd_notify_barrier), so the message is attributed to the unit although the sender exits at once;
 * the unit needs `NotifyAccess=all` because the sender is a child process. Debian 12 and Raspberry
 * Pi OS bookworm ship systemd 252.
 *
 * Outside systemd ($NOTIFY_SOCKET unset) the notifier is null and nothing is sent.
 */
import type { Logger } from '../../coordinator/core/log.js'
import { runTool } from '../tools.js'

export interface NotifierOptions {
  env?: NodeJS.ProcessEnv
  /** Directory holding systemd-notify; PATH lookup when absent (tests point it at a fake). */
  toolDir?: string
  log: Pick<Logger, 'warn' | 'info'>
}

export class SystemdNotifier {
  readonly #o: NotifierOptions
  readonly #watchdogMs: number | null
  #watchdog: NodeJS.Timeout | undefined

  private constructor(opts: NotifierOptions, watchdogMs: number | null) {
    this.#o = opts
    this.#watchdogMs = watchdogMs
  }

  /** Null when not started by systemd with a notify socket. */
  static fromEnv(opts: NotifierOptions): SystemdNotifier | null {
    const env = opts.env ?? process.env
    if (!env['NOTIFY_SOCKET']) return null
    return new SystemdNotifier(opts, watchdogIntervalMs(env, process.pid))
  }

  /** How often the watchdog is pinged; null when the unit has no watchdog. */
  get watchdogIntervalMs(): number | null {
    return this.#watchdogMs
  }

  ready(status: string): Promise<void> {
    return this.#send(['READY=1', `STATUS=${status}`])
  }

  stopping(): Promise<void> {
    this.#stopWatchdog()
    return this.#send(['STOPPING=1', 'STATUS=stopping'])
  }

  /**
   * Pings the watchdog until stopping. The ping is sent from a timer, so a blocked event loop (a
   * runaway synchronous loop, a deadlock in native code) stops the pings and systemd restarts the
   * daemon after WatchdogSec.
   */
  startWatchdog(): void {
    if (this.#watchdogMs === null || this.#watchdog !== undefined) return
    this.#watchdog = setInterval(() => void this.#send(['WATCHDOG=1']), this.#watchdogMs)
    this.#watchdog.unref()
  }

  #stopWatchdog(): void {
    clearInterval(this.#watchdog)
    this.#watchdog = undefined
  }

  /** A failed notification is logged, never thrown: the daemon works without its supervisor. */
  async #send(assignments: string[]): Promise<void> {
    try {
      await runTool('systemd-notify', assignments, { dir: this.#o.toolDir, pkg: 'systemd', env: this.#o.env })
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message, message: assignments[0] }, 'systemd notification failed')
    }
  }
}

/**
 * Half of WatchdogSec, as sd_watchdog_enabled(3) recommends. WATCHDOG_PID, when set, names the
 * process the watchdog is for; another process's watchdog is not ours to ping.
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = Number(env['WATCHDOG_USEC'])
  if (!Number.isFinite(usec) || usec <= 0) return null
  const forPid = env['WATCHDOG_PID']
  if (forPid !== undefined && forPid !== '' && Number(forPid) !== pid) return null
  return Math.max(1, Math.floor(usec / 2000))
}
