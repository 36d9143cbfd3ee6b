/**
 * A body decoder that a reload can replace (`receivers.decode_threads`): `swap` puts a new one in
 * use for the next body; the one it replaces finishes the bodies it holds and is closed after the
 * last (its threads stop then). No body in flight is answered "decoder died" because of a reload.
 */
export class Swappable<D extends { readonly close: () => Promise<void> }> {
  private current: D
  /** Bodies in hand per decoder, counted while their promise is pending. */
  private readonly inHand = new Map<D, number>()
  /** Replaced decoders still holding bodies: closed when the last is answered. */
  private readonly retiring = new Set<D>()

  constructor(initial: D) {
    this.current = initial
  }

  /** The decoder in use. */
  get value(): D {
    return this.current
  }

  /** Runs `f` with the decoder in use; a promise it returns keeps that decoder open until it settles. */
  use<R>(f: (decoder: D) => R): R {
    const decoder = this.current
    const out = f(decoder)
    if (!(out instanceof Promise)) return out
    this.inHand.set(decoder, (this.inHand.get(decoder) ?? 0) + 1)
    const done = () => {
      const left = (this.inHand.get(decoder) ?? 1) - 1
      if (left > 0) {
        this.inHand.set(decoder, left)
        return
      }
      this.inHand.delete(decoder)
      if (this.retiring.delete(decoder)) void decoder.close()
    }
    return out.then(
      (v) => {
        done()
        return v
      },
      (e: unknown) => {
        done()
        throw e
      },
    ) as R
  }

  /** Puts `next` in use; the decoder it replaces is closed once it holds no body. */
  swap(next: D): void {
    const old = this.current
    if (old === next) return
    this.current = next
    if (this.inHand.has(old)) this.retiring.add(old)
    else void old.close()
  }

  /** Closes the decoder in use and every replaced one still finishing its bodies. */
  async close(): Promise<void> {
    const all = [this.current, ...this.retiring]
    this.retiring.clear()
    await Promise.all(all.map((d) => d.close()))
  }
}

/**
 * A protocol's decoder that follows `receivers.decode_threads`: made when its receiver opens, with
 * the threads the last config applied asks for, and replaced (`Swappable.swap`) when a later
 * config asks for another number.
 */
export class ThreadedDecoder<D extends { readonly close: () => Promise<void> }> {
  private wanted: number
  private inUse: number
  private decoders: Swappable<D> | undefined

  constructor(
    threads: number,
    private readonly make: (threads: number) => D,
  ) {
    this.wanted = threads
    this.inUse = threads
  }

  /** The threads of the decoder in use (or to be made). */
  get threads(): number {
    return this.inUse
  }

  /** Makes the decoder, with the threads last asked for. */
  open(): Swappable<D> {
    this.inUse = this.wanted
    this.decoders = new Swappable(this.make(this.inUse))
    return this.decoders
  }

  /** Asks for `threads`; true when the decoder in use was replaced for it. */
  want(threads: number): boolean {
    this.wanted = threads
    if (this.decoders === undefined || threads === this.inUse) return false
    this.decoders.swap(this.make(threads))
    this.inUse = threads
    return true
  }
}
