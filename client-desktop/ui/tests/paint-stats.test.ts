import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TileStats } from '../src/video/paint-stats';

test('a paint report carries only the frames painted since the previous one', () => {
  const s = new TileStats('peer/camera');
  for (let i = 0; i < 3; i++) s.painted(10 + i, [5, 3, 2 + i]);
  const first = s.takeReport();
  assert.equal(first.frames, 3);
  assert.deepEqual(first.latencies_ms, [10, 11, 12]);
  assert.deepEqual(first.stages_ms, [
    [5, 3, 2],
    [5, 3, 3],
    [5, 3, 4],
  ]);
  // Nothing painted since: the totals, no frames.
  const idle = s.takeReport();
  assert.equal(idle.frames, 3);
  assert.deepEqual(idle.latencies_ms, []);
  s.painted(20, [1, 1, 18]);
  assert.deepEqual(s.takeReport().latencies_ms, [20]);
  // The full history stays readable for WebDriver tests.
  assert.deepEqual(s.toPaint().latencies_ms, [10, 11, 12, 20]);
  // A report that failed goes back, before what was painted since.
  s.painted(30, [1, 1, 28]);
  const failed = s.takeReport();
  s.painted(31, [1, 1, 29]);
  s.restore(failed);
  assert.deepEqual(s.takeReport().latencies_ms, [30, 31]);
  // A page whose reports fail keeps the newest 600 unsent frames at most (700 between trims).
  for (let i = 0; i < 2000; i++) s.painted(i, [0, 0, 1]);
  const kept = s.takeReport().latencies_ms;
  assert.ok(kept.length >= 600 && kept.length <= 700, `${kept.length}`);
  assert.equal(kept[kept.length - 1], 1999);
});
