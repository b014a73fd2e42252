import { describe, expect, test } from "bun:test";
import { PROGRESS_INTERVAL_MS, ProgressLog } from "../../src/node/snapshots.ts";

describe("ProgressLog", () => {
  test("reports at most once per interval", () => {
    let now = 0;
    const reports: number[] = [];
    const progress = new ProgressLog((percent) => reports.push(percent), () => now);

    // A quick operation reports nothing.
    for (let done = 1; done <= 10; done++) progress.update(done, 100);
    expect(reports).toEqual([]);

    now = PROGRESS_INTERVAL_MS;
    progress.update(30, 100);
    progress.update(40, 100);
    now += PROGRESS_INTERVAL_MS - 1;
    progress.update(50, 100);
    now += 1;
    progress.update(60, 100);
    expect(reports).toEqual([30, 60]);
  });

  test("empty total counts as done", () => {
    let now = 0;
    const reports: number[] = [];
    const progress = new ProgressLog((percent) => reports.push(percent), () => now);
    now = PROGRESS_INTERVAL_MS;
    progress.update(0, 0);
    expect(reports).toEqual([100]);
  });
});
