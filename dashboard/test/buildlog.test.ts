import { describe, expect, it } from 'vitest';
import { BuildLogFollower, type Chunk } from '../src/lib/buildlog';

/** A control plane's build log as it grows, and the deployment's state over time. */
function server(output: string[], states: string[]) {
  let round = 0;
  let text = '';
  const asked: number[] = [];
  return {
    asked,
    fetchState: async () => {
      const s = states[Math.min(round, states.length - 1)] as string;
      text += output[round] ?? '';
      round++;
      return s;
    },
    fetchLog: async (from: number): Promise<Chunk> => {
      asked.push(from);
      return { text: text.slice(from), next: text.length, skipped: 0 };
    },
  };
}

describe('following a build log', () => {
  it('asks from the offset reached, and ends after the final state', async () => {
    const s = server(['step 1\n', 'step 2\n', '', 'done\n'], ['building', 'building', 'building', 'live']);
    const f = new BuildLogFollower(s.fetchLog, s.fetchState);
    for (let i = 0; i < 10 && !f.done; i++) await f.step();
    expect(f.text).toBe('step 1\nstep 2\ndone\n');
    expect(f.done).toBe(true);
    expect(s.asked).toEqual([0, 7, 14, 14]);
  });

  it('catches up after a pause (a hidden tab) without repeating anything', async () => {
    const s = server(['a\n', 'b\n', 'c\n', 'd\n'], ['building', 'building', 'starting', 'failed']);
    const f = new BuildLogFollower(s.fetchLog, s.fetchState);
    await f.step();
    // Hidden: no steps, the server goes on; shown again: one read brings everything since.
    await s.fetchState();
    await s.fetchState();
    await f.step();
    expect(f.text).toBe('a\nb\nc\nd\n');
    expect(f.done).toBe(true);
  });

  it('says when earlier output is no longer kept', async () => {
    const f = new BuildLogFollower(
      async () => ({ text: 'tail\n', next: 5000, skipped: 4000 }),
      async () => 'live',
    );
    await f.step();
    expect(f.text).toContain('4000 bytes of earlier output are no longer kept');
    expect(f.text.endsWith('tail\n')).toBe(true);
    expect(f.done).toBe(true);
  });
});
