interface Waiter {
  readonly priority: number
  readonly seq: number
  start(): void
}

interface TaskSlots {
  held: number
  readonly waiting: Waiter[]
}

/**
 * The global call slots every task shares. No task holds more than `maxPerTask` of them at once,
 * whatever its manifest asks or however many of its versions are draining, so one task can never
 * take every slot. A freed slot goes to the waiting call of the highest priority and, among equals,
 * to the task holding the fewest slots (then the one that has waited longest): a task with a deep
 * queue does not get every slot that frees while another task waits. Running calls are never
 * preempted; the per-call CPU and wall limits bound how long a slot is held.
 */
export class CallSlots {
  readonly capacity: number
  readonly maxPerTask: number
  readonly #tasks = new Map<string, TaskSlots>()
  #busy = 0
  #seq = 0

  constructor(capacity: number, maxPerTask: number) {
    this.capacity = capacity
    this.maxPerTask = Math.min(maxPerTask, capacity)
  }

  /** Runs `fn` once `task` is given a slot; the slot is freed when `fn` settles. */
  run<T>(task: string, priority: number, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const slots = this.#slotsOf(task)
      const start = (): void => {
        void (async () => {
          try {
            resolve(await fn())
          } catch (err) {
            reject(err)
          } finally {
            this.#release(task, slots)
          }
        })()
      }
      slots.waiting.push({ priority, seq: this.#seq++, start })
      this.#dispatch()
    })
  }

  /** Slots `task` holds now. */
  held(task: string): number {
    return this.#tasks.get(task)?.held ?? 0
  }

  #slotsOf(task: string): TaskSlots {
    let slots = this.#tasks.get(task)
    if (slots === undefined) {
      slots = { held: 0, waiting: [] }
      this.#tasks.set(task, slots)
    }
    return slots
  }

  #release(task: string, slots: TaskSlots): void {
    slots.held--
    this.#busy--
    if (slots.held === 0 && slots.waiting.length === 0) this.#tasks.delete(task)
    this.#dispatch()
  }

  #dispatch(): void {
    while (this.#busy < this.capacity) {
      const next = this.#pick()
      if (next === undefined) return
      const waiter = next.waiting.shift()
      if (waiter === undefined) return
      next.held++
      this.#busy++
      waiter.start()
    }
  }

  /** At most 64-odd tasks are installed: a scan per freed slot costs less than keeping a heap in order. */
  #pick(): TaskSlots | undefined {
    let best: TaskSlots | undefined
    let bestHead: Waiter | undefined
    for (const slots of this.#tasks.values()) {
      const head = slots.waiting[0]
      if (head === undefined || slots.held >= this.maxPerTask) continue
      if (best === undefined || bestHead === undefined || before(head, slots.held, bestHead, best.held)) {
        best = slots
        bestHead = head
      }
    }
    return best
  }
}

function before(a: Waiter, aHeld: number, b: Waiter, bHeld: number): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority
  if (aHeld !== bHeld) return aHeld < bHeld
  return a.seq < b.seq
}
