/**
 * Routing what passes the limits to the endpoints of a protocol: each entry of a batch gets the
 * endpoint that owns its shard key on the hash ring, and the request is rebuilt once per endpoint
 * with only that endpoint's series.
 *
 * Shard keys (`exporters.<protocol>.sharding.key`):
 * - `series`: the whole series identity (its fingerprint) — spreads best;
 * - `labels`: the values of the listed labels — every series with the same values together;
 * - `rule`: the owning rule — every series a rule's limits count meet in one place, so each limit
 *   holds exactly once for a fleet (a series no rule owns is keyed by its identity);
 * - `rule_group`: the owning rule and its `group_by` values — a rule without `group_by` as with
 *   `rule`; a rule with it has each group whole in one place, its groups spread over the endpoints
 *   (its limits, which are the rule's, then hold per endpoint its groups land on).
 *
 * @module
 */
import type { ShardKey } from "../config/main-schema.js"
import { type HashRing, positionOf, positionOfText } from "../export/ring.js"
import type { BatchVerdict, SeriesBatch } from "../limits/batch.js"
import { fingerprintSeries } from "../limits/fingerprint.js"
import { groupKey, KEY_SEPARATOR, labelValue } from "../limits/match.js"

export interface ShardKeySpec {
  readonly key: ShardKey
  /** With `key: labels`. */
  readonly labels: ReadonlyArray<string>
}

const fp = new Uint32Array(2)

/** The ring position of entry `i`'s shard key. */
export const shardPosition = (
  spec: ShardKeySpec,
  batch: SeriesBatch,
  verdict: BatchVerdict,
  i: number,
): number => {
  if (spec.key === "labels") {
    const name = batch.nameOf(i)
    const labels = batch.labelsOf(i)
    let key = ""
    for (let l = 0; l < spec.labels.length; l++) {
      if (l > 0) key += KEY_SEPARATOR
      key += labelValue(name, labels, spec.labels[l] as string) ?? ""
    }
    return positionOfText(key)
  }
  if (spec.key === "rule" || spec.key === "rule_group") {
    const rule = verdict.rule[i]
    if (rule !== undefined) {
      const group =
        spec.key === "rule" || rule.groupBy.length === 0
          ? ""
          : groupKey(rule.groupBy, batch.nameOf(i), batch.labelsOf(i))
      return positionOfText(rule.name + KEY_SEPARATOR + group)
    }
  }
  const his = batch.hi
  const los = batch.lo
  if (his !== undefined && los !== undefined) return positionOf(his[i] as number, los[i] as number)
  fingerprintSeries(batch.nameOf(i), batch.labelsOf(i), fp)
  return positionOf(fp[0] as number, fp[1] as number)
}

/**
 * The endpoint of each entry (its index on `ring`), written to `owner`; returns how many entries
 * each endpoint got. Entries the verdict drops entirely still get one (they are not forwarded).
 */
export const shardOwners = (
  ring: HashRing,
  spec: ShardKeySpec,
  batch: SeriesBatch,
  verdict: BatchVerdict,
  owner: Uint16Array,
): Uint32Array => {
  const counts = new Uint32Array(ring.size)
  for (let i = 0; i < batch.length; i++) {
    const e = ring.ownerAt(shardPosition(spec, batch, verdict, i))
    owner[i] = e
    counts[e] = (counts[e] as number) + 1
  }
  return counts
}
