/**
 * The bounded in-memory buffer between receivers and one exporter. Receivers ask `canTake` before
 * they account a request against the limits, then `push` (synchronously, so nothing can fill the
 * buffer in between): a full buffer is answered with backpressure (429/503/RESOURCE_EXHAUSTED) and
 * the request costs nothing, so the sender's retry is not counted twice.
 */
export interface Buffered<P> {
  readonly payload: P
  readonly datapoints: number
  readonly bytes: number
  /** Wall-clock ms when it was accepted. */
  readonly at: number
}

/**
 * What receivers push to and an exporter takes from: the memory buffer (`ExportBuffer`) or the
 * durable queue (`DurableQueue`). Items are taken in order; an exporter `ack`s each item it is done
 * with (delivered, or counted lost), in any order.
 */
export interface ExportQueue<P> {
  /** Datapoints pushed and not taken. */
  readonly datapoints: number
  /** Items pushed and not taken. */
  readonly length: number
  /** True when what is pushed survives a restart until it is acknowledged. */
  readonly durable: boolean
  canTake(datapoints: number, bytes: number): boolean
  push(item: Buffered<P>): void
  oldest(): number | undefined
  peek(maxDatapoints: number): Array<Buffered<P>>
  take(maxDatapoints: number): Array<Buffered<P>>
  /** The exporter is done with these taken items: delivered, or counted lost. */
  ack(items: ReadonlyArray<Buffered<P>>): void
  /** Resolves at the next push. */
  nextPush(): Promise<void>
}

/**
 * One pending promise shared by every waiter until the next push, which resolves it: a waiter that
 * is abandoned (a race it lost) and asked again costs nothing, and nothing accumulates while idle.
 */
export class PushSignal {
  private pending: { readonly promise: Promise<void>; readonly resolve: () => void } | undefined

  next(): Promise<void> {
    if (this.pending === undefined) {
      let resolve: () => void = () => {}
      const promise = new Promise<void>((r) => {
        resolve = r
      })
      this.pending = { promise, resolve }
    }
    return this.pending.promise
  }

  fire(): void {
    const p = this.pending
    this.pending = undefined
    p?.resolve()
  }
}

/** What a slot holds once its item was taken. */
const TAKEN: Buffered<never> = Object.freeze({ payload: undefined as never, datapoints: 0, bytes: 0, at: 0 })

export class ExportBuffer<P> implements ExportQueue<P> {
  readonly durable = false
  private items: Array<Buffered<P>> = []
  private head = 0
  private datapointsHeld = 0
  private bytesHeld = 0
  private readonly pushes = new PushSignal()

  /** The bounds may change while the buffer is in use (a reload): they apply to the next request. */
  constructor(
    public maxDatapoints: number,
    public maxBytes: number,
  ) {}

  get datapoints(): number {
    return this.datapointsHeld
  }
  get bytes(): number {
    return this.bytesHeld
  }
  get length(): number {
    return this.items.length - this.head
  }

  /** Whether a request of this size fits now. An empty buffer takes any one request. */
  canTake(datapoints: number, bytes: number): boolean {
    if (this.length === 0) return true
    return this.datapointsHeld + datapoints <= this.maxDatapoints && this.bytesHeld + bytes <= this.maxBytes
  }

  push(item: Buffered<P>): void {
    this.items.push(item)
    this.datapointsHeld += item.datapoints
    this.bytesHeld += item.bytes
    this.pushes.fire()
  }

  /** Wall-clock ms of the oldest item, or undefined when empty. */
  oldest(): number | undefined {
    return this.items[this.head]?.at
  }

  /** The items `take(maxDatapoints)` would take, left in the buffer. */
  peek(maxDatapoints: number): Array<Buffered<P>> {
    const out: Array<Buffered<P>> = []
    let n = 0
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i] as Buffered<P>
      if (out.length > 0 && n + item.datapoints > maxDatapoints) break
      out.push(item)
      n += item.datapoints
    }
    return out
  }

  /** Takes items from the front until `maxDatapoints` would be exceeded (always at least one). */
  take(maxDatapoints: number): Array<Buffered<P>> {
    const out = this.peek(maxDatapoints)
    for (const item of out) {
      // The slot lets go of what it held at once: a taken request's bytes are the exporter's alone,
      // and are freed as soon as it has sent them (the array itself is compacted only now and then).
      this.items[this.head] = TAKEN as Buffered<P>
      this.head++
      this.datapointsHeld -= item.datapoints
      this.bytesHeld -= item.bytes
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return out
  }

  /** Nothing to do: a taken item is the exporter's alone. */
  ack(_items: ReadonlyArray<Buffered<P>>): void {}

  /** Puts items taken but not delivered back at the front, in order. */
  unshift(items: ReadonlyArray<Buffered<P>>): void {
    if (items.length === 0) return
    this.items = [...items, ...this.items.slice(this.head)]
    this.head = 0
    for (const i of items) {
      this.datapointsHeld += i.datapoints
      this.bytesHeld += i.bytes
    }
  }

  /** Resolves when something is pushed (or at once if the buffer is not empty). */
  whenNotEmpty(): Promise<void> {
    return this.length > 0 ? Promise.resolve() : this.nextPush()
  }

  /**
   * Resolves at the next push. Every caller until then gets the same promise, so a waiter that is
   * abandoned (a race it lost) and asked again costs nothing: nothing accumulates while idle.
   */
  nextPush(): Promise<void> {
    return this.pushes.next()
  }
}
