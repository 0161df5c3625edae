// Following a build log by offset: each step asks for what came after the last byte seen, so
// a tab hidden for a while (steps paused) catches up from where it was, and a gap the control
// plane no longer keeps is said, not hidden. Following ends once the deployment is in a final
// state and the log has been read after it.

import { FINAL_STATES } from './format';

export interface Chunk {
  text: string;
  next: number;
  skipped: number;
}

export class BuildLogFollower {
  offset = 0;
  text = '';
  /** Bytes that were no longer kept when asked for. */
  skipped = 0;
  done = false;

  constructor(
    private readonly fetchLog: (from: number) => Promise<Chunk>,
    private readonly fetchState: () => Promise<string>,
    /** The most text kept in the view. */
    private readonly keep = 1 << 20,
  ) {}

  /** One round: reads the state, then the log after `offset`. */
  async step(): Promise<void> {
    if (this.done) return;
    const state = await this.fetchState();
    const chunk = await this.fetchLog(this.offset);
    if (chunk.skipped > 0) {
      this.skipped += chunk.skipped;
      this.text += `\n… ${chunk.skipped} bytes of earlier output are no longer kept …\n`;
    }
    this.text += chunk.text;
    if (this.text.length > this.keep) this.text = this.text.slice(this.text.length - this.keep);
    this.offset = chunk.next;
    // The state was final before this read: nothing more will come.
    if (FINAL_STATES.has(state)) this.done = true;
  }
}
