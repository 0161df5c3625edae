// A virtualised log view: only the rows in sight (and a few more) are in the DOM, so 10,000
// lines scroll as lightly as 10. It follows new lines until the user scrolls up; "Jump to
// latest" resumes following.

import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { Follow, type LogBuffer, visible } from './lib/logwindow';

const ROW = 18;

export function LogView(props: { buffer: LogBuffer; version: number; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  const follow = useRef(new Follow());
  const [scroll, setScroll] = useState({ top: 0, height: 400 });
  const [following, setFollowing] = useState(true);
  const count = props.buffer.length;
  const total = count * ROW;
  useLayoutEffect(() => {
    const el = box.current;
    if (!el || !follow.current.following) return;
    const top = Math.max(0, total - el.clientHeight);
    if (Math.abs(el.scrollTop - top) >= 1) {
      follow.current.scrolledBySelf(top);
      el.scrollTop = top;
    }
    setScroll({ top, height: el.clientHeight });
  }, [props.version, total]);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const resize = new ResizeObserver(() => setScroll((s) => ({ ...s, height: el.clientHeight })));
    resize.observe(el);
    return () => resize.disconnect();
  }, []);
  const w = visible(count, ROW, scroll.top, scroll.height);
  const rows = props.buffer.slice(w.start, w.end);
  return (
    <div class="logview">
      <div
        ref={box}
        class="log log-scroll"
        tabIndex={0}
        role="log"
        aria-label={props.label}
        onScroll={(e) => {
          const el = e.currentTarget;
          follow.current.onScroll(el.scrollTop, el.clientHeight, total, ROW);
          setFollowing(follow.current.following);
          setScroll({ top: el.scrollTop, height: el.clientHeight });
        }}
      >
        <div class="log-spacer" style={{ height: `${w.total}px` }}>
          <div class="log-rows" style={{ transform: `translateY(${w.top}px)` }}>
            {rows.map((r) => (
              <div key={r.seq} class={`log-row ${r.stream}`}>
                {r.text}
              </div>
            ))}
          </div>
        </div>
      </div>
      {!following && (
        <button
          type="button"
          class="jump primary"
          onClick={() => {
            follow.current.jumpToLatest();
            setFollowing(true);
            const el = box.current;
            if (el) {
              const top = Math.max(0, total - el.clientHeight);
              follow.current.scrolledBySelf(top);
              el.scrollTop = top;
              setScroll({ top, height: el.clientHeight });
            }
          }}
        >
          Jump to latest
        </button>
      )}
    </div>
  );
}
