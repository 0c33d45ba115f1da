import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { median, rotated, roundRatios, spread } from './rounds.js';

describe('benchmark rounds', () => {
  it('median of odd and even counts, unsorted input; NaN for none', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  it('rotates the run order so each target starts one round', () => {
    const t = ['a', 'b', 'c'];
    assert.deepEqual([0, 1, 2, 3].map((r) => rotated(t, r).join('')), ['abc', 'bca', 'cab', 'abc']);
    assert.deepEqual(rotated([], 2), []);
  });

  it('takes ratios within each round, not across rounds', () => {
    // Round 2 is disturbed for both targets alike: its ratio is still 0.8.
    const subject = [80, 40, 88];
    const base = [100, 50, 110];
    assert.deepEqual(roundRatios(subject, base), [0.8, 0.8, 0.8]);
    // Missing figures and a zero base give no ratio for that round.
    assert.deepEqual(roundRatios([1, null, 3], [2, 4, 0]), [0.5, null, null]);
  });

  it('spread: median, min, max and count over the numbers only', () => {
    assert.deepEqual(spread([0.9, null, 0.7, 0.8]), { median: 0.8, min: 0.7, max: 0.9, n: 3 });
    assert.equal(spread([null, null]), null);
  });
});
