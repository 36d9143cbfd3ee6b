/**
 * The 64-bit fingerprint of a series: what the series sets store, what the match cache is keyed by,
 * and what `sample` decides by.
 *
 * Two multiplicative 32-bit lanes over the UTF-16 code units of the series key, cross-mixed at the
 * end (the cyrb53 construction, keeping both 32-bit halves). Stable: the same series has the same
 * fingerprint in every process and every version of the governor (sampling depends on it).
 * Never `(0, 0)`, which marks an empty slot in a `SeriesSet`.
 *
 * `fingerprintSeries(name, labels)` hashes the series key `seriesKey(name, labels)` without
 * building it, so it equals `fingerprint(seriesKey(name, labels))`.
 */

const SEED_1 = 0xdeadbeef
const SEED_2 = 0x41c6ce57
const P1 = 2654435761
const P2 = 1597334677
/** `KEY_SEPARATOR` of match.ts, as a code unit. */
const SEP = 0

// The lanes of the fingerprint being computed (module scope: no allocation per call).
let h1 = 0
let h2 = 0

const absorb = (s: string): void => {
  let a = h1
  let b = h2
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    a = Math.imul(a ^ c, P1)
    b = Math.imul(b ^ c, P2)
  }
  h1 = a
  h2 = b
}

const finish = (out: Uint32Array): void => {
  let a = h1
  let b = h2
  a = Math.imul(a ^ (a >>> 16), 2246822507)
  a ^= Math.imul(b ^ (b >>> 13), 3266489909)
  b = Math.imul(b ^ (b >>> 16), 2246822507)
  b ^= Math.imul(a ^ (a >>> 13), 3266489909)
  out[0] = a
  out[1] = (a | b) === 0 ? 1 : b
}

/** Writes the fingerprint of the series key `key`: high half to `out[0]`, low half to `out[1]`. */
export const fingerprint = (key: string, out: Uint32Array): void => {
  h1 = SEED_1
  h2 = SEED_2
  absorb(key)
  finish(out)
}

/**
 * Writes the fingerprint of the series `name` + `labels` (flat, key-sorted `[k0, v0, …]`; labels
 * with an empty value are left out, as in `seriesKey`).
 */
export const fingerprintSeries = (name: string, labels: ReadonlyArray<string>, out: Uint32Array): void => {
  h1 = SEED_1
  h2 = SEED_2
  absorb(name)
  for (let j = 0; j + 1 < labels.length; j += 2) {
    const v = labels[j + 1] as string
    if (v === "") continue
    h1 = Math.imul(h1 ^ SEP, P1)
    h2 = Math.imul(h2 ^ SEP, P2)
    absorb(labels[j] as string)
    h1 = Math.imul(h1 ^ SEP, P1)
    h2 = Math.imul(h2 ^ SEP, P2)
    absorb(v)
  }
  finish(out)
}

// --- the same fingerprint over UTF-8 bytes, for decoders that read labels from the wire ---------

/** Starts a fingerprint (then `absorbBytes` / `absorbSeparator`, then `finishFingerprint`). */
export const beginFingerprint = (): void => {
  h1 = SEED_1
  h2 = SEED_2
}

/**
 * Absorbs `bytes[start, end)`, which must be ASCII: then each byte is the UTF-16 code unit
 * `fingerprintSeries` absorbs for the same character, and the two fingerprints agree.
 */
export const absorbBytes = (bytes: Uint8Array, start: number, end: number): void => {
  let a = h1
  let b = h2
  for (let i = start; i < end; i++) {
    const c = bytes[i] as number
    a = Math.imul(a ^ c, P1)
    b = Math.imul(b ^ c, P2)
  }
  h1 = a
  h2 = b
}

/** Absorbs the UTF-16 code units of `s`, as `fingerprintSeries` absorbs a name, a label name or a value. */
export const absorbText = (s: string): void => absorb(s)

/** Absorbs the separator between the parts of a series key. */
export const absorbSeparator = (): void => {
  h1 = Math.imul(h1 ^ SEP, P1)
  h2 = Math.imul(h2 ^ SEP, P2)
}

/** Writes the fingerprint begun by `beginFingerprint`. */
export const finishFingerprint = (out: Uint32Array): void => finish(out)
