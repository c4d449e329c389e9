import type ivm from 'isolated-vm'

/** How often a running entry's CPU time is read once it could have used its budget. */
export const WATCHDOG_INTERVAL_MS = 10

/** Where an entry into the isolate started, for `cpuSince`. */
export interface CpuMark {
  readonly counter: bigint
  readonly process: NodeJS.CpuUsage
}

export const markCpu = (isolate: ivm.Isolate): CpuMark => ({ counter: isolate.cpuTime, process: process.cpuUsage() })

/**
 * CPU time the isolate used since `mark`, in ms, as the smaller of two upper bounds: growth of
 * isolated-vm's `cpuTime` counter, and the whole process's CPU time. The counter alone is not
 * enough: on Linux it advances with elapsed time while the isolate runs (measured: 300 ms for an
 * entry blocked 300 ms in Atomics.wait, and for a spin that got half a core), so a thread waiting
 * for a core on a loaded gateway would use up its budget. The process figure never undercounts
 * either; it overcounts only while other threads of the daemon burn CPU at the same time.
 */
export function cpuSince(isolate: ivm.Isolate, mark: CpuMark): number {
  const used = process.cpuUsage(mark.process)
  return Math.min(Number(isolate.cpuTime - mark.counter) / 1e6, (used.user + used.system) / 1000)
}

/**
 * Watches one entry into the isolate and calls `overrun` once it has used `budgetMs` of CPU time
 * (`cpuSince`). Neither bound grows faster than the clock, so the first check comes only after
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
