import { closeSync, openSync, readSync } from 'node:fs'
import type ivm from 'isolated-vm'

/** How often a running entry's CPU time is read once it could have used its budget. */
export const WATCHDOG_INTERVAL_MS = 10

/** Where an entry into the isolate started, for `cpuSince`. */
export interface CpuMark {
  readonly counter: bigint
  /** CPU time of the daemon's threads other than the one running its event loop, in ms. */
  readonly others: number
}

/**
 * The event loop's thread's own CPU time, in ms, from Linux's schedstat (its first field is ns on
 * a CPU); 0 where there is none, which only makes `otherThreadsMs` a looser bound. The file stays
 * open: a read is about 2 µs, opening it each time about 30.
 */
class LoopThreadCpu {
  readonly #buffer = Buffer.alloc(64)
  #fd: number | undefined | null

  ms(): number {
    if (this.#fd === undefined) this.#fd = this.#open()
    if (this.#fd === null) return 0
    try {
      const n = readSync(this.#fd, this.#buffer, 0, this.#buffer.length, 0)
      const ns = Number.parseInt(this.#buffer.toString('latin1', 0, n), 10)
      return Number.isFinite(ns) ? ns / 1e6 : 0
    } catch {
      closeSync(this.#fd)
      this.#fd = null
      return 0
    }
  }

  #open(): number | null {
    try {
      return openSync(`/proc/self/task/${process.pid}/schedstat`, 'r')
    } catch {
      return null
    }
  }
}

const loopThread = new LoopThreadCpu()

/** CPU time of every thread of the process except the event loop's, in ms. */
function otherThreadsMs(): number {
  const used = process.cpuUsage()
  return (used.user + used.system) / 1000 - loopThread.ms()
}

export const markCpu = (isolate: ivm.Isolate): CpuMark => ({ counter: isolate.cpuTime, others: otherThreadsMs() })

/**
 * CPU time the isolate used since `mark`, in ms, as the smaller of two upper bounds: growth of
 * isolated-vm's `cpuTime` counter, and the CPU time of the daemon's threads other than the event
 * loop's (the isolate runs on one of them). The counter alone is not enough: on Linux it advances
 * with elapsed time while the isolate runs (measured: 300 ms for an entry blocked 300 ms in
 * Atomics.wait, and for a spin that got half a core), so a thread waiting for a core on a loaded
 * gateway would use up its budget. The threads' figure never undercounts either; it overcounts
 * only while other isolates (or the daemon's helper threads) burn CPU at the same moment.
 */
export function cpuSince(isolate: ivm.Isolate, mark: CpuMark): number {
  return Math.max(0, Math.min(Number(isolate.cpuTime - mark.counter) / 1e6, otherThreadsMs() - mark.others))
}

/**
 * Watches one entry into the isolate and calls `overrun` once it has used `budgetMs` of CPU time
 * (`cpuSince`). Their minimum never grows faster than the clock, so the first check comes only after
 * `budgetMs` and a short entry costs one timer. Returns a function that stops watching.
 */
export function watchCpu(isolate: ivm.Isolate, mark: CpuMark, budgetMs: number, overrun: () => void): () => void {
  let timer: NodeJS.Timeout
  const check = (): void => {
    if (isolate.isDisposed) return
    const used = cpuSince(isolate, mark)
    if (used >= budgetMs) overrun()
    else timer = setTimeout(check, Math.min(WATCHDOG_INTERVAL_MS, Math.max(1, budgetMs - used)))
  }
  timer = setTimeout(check, Math.max(1, Math.ceil(budgetMs)))
  return () => clearTimeout(timer)
}
