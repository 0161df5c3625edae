// One deployment: its state, the build log following live (by offset, so it survives the tab
// being hidden; it says when the deployment reached a final state), cancel and redeploy.

import { useEffect, useRef, useState } from 'preact/hooks';
import { Link, useLocation } from 'wouter-preact';
import { api, buildLog, type Deployment } from '../api/client';
import { Async, Badge, FormError } from '../components';
import { FINAL_STATES, ago } from '../lib/format';
import { BuildLogFollower } from '../lib/buildlog';
import { useResource, useSubmit } from '../hooks';

export function DeploymentPage(props: { id: number }) {
  const [, navigate] = useLocation();
  const d = useResource(() => api.deployment(props.id), [props.id]);
  const [log, setLog] = useState({ text: '', done: false });
  const pre = useRef<HTMLPreElement>(null);
  const stick = useRef(true);
  useEffect(() => {
    let latest: Deployment | undefined;
    const follower = new BuildLogFollower(
      (from) => buildLog(props.id, from),
      async () => {
        latest = await api.deployment(props.id);
        d.set(latest);
        return latest.state;
      },
    );
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const round = async () => {
      if (stop) return;
      // Hidden tabs wait; the next round reads from the offset reached.
      if (document.visibilityState !== 'visible') {
        timer = setTimeout(round, 1000);
        return;
      }
      try {
        await follower.step();
        setLog({ text: follower.text, done: follower.done });
      } catch {
        // The banner says when the network is down; try again.
      }
      if (!follower.done && !stop) timer = setTimeout(round, 1000);
    };
    void round();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [props.id]);
  useEffect(() => {
    const el = pre.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [log.text]);
  const cancel = useSubmit(async () => d.set(await api.cancel(props.id)));
  const redeploy = useSubmit(async (slug: string) => {
    const next = await api.deploy(slug, { rollback_to: props.id });
    navigate(`/deployments/${next.id}`);
  });
  return (
    <Async r={d} what="the deployment">
      {(dep) => (
        <>
          <p class="crumbs">
            <Link href="/apps">Apps</Link> / <Link href={`/apps/${dep.app}`}>{dep.app}</Link> / <Link href={`/apps/${dep.app}/deployments`}>deployments</Link> / #{dep.id}
          </p>
          <div class="title-row">
            <h1>
              Deployment #{dep.id} <Badge state={dep.state} />
            </h1>
            <div class="actions">
              {!FINAL_STATES.has(dep.state) && (
                <button type="button" disabled={cancel.busy} onClick={() => void cancel.run()}>
                  Cancel
                </button>
              )}
              {(dep.state === 'live' || dep.state === 'superseded') && (
                <button type="button" disabled={redeploy.busy} onClick={() => void redeploy.run(dep.app)}>
                  {dep.state === 'live' ? 'Redeploy' : 'Roll back to this'}
                </button>
              )}
            </div>
          </div>
          <p class="muted">
            <code>{dep.git_ref}</code>
            {dep.commit_sha && <> · commit <code>{dep.commit_sha.slice(0, 12)}</code></>}
            {dep.rollback_of != null && (
              <>
                {' '}· again: <Link href={`/deployments/${dep.rollback_of}`}>#{dep.rollback_of}</Link>
              </>
            )}{' '}
            · created {ago(dep.created_at)} · updated {ago(dep.updated_at)}
          </p>
          {dep.commit_message && (
            <p>
              “{dep.commit_message}”{dep.commit_author ? ` — ${dep.commit_author}` : ''}
            </p>
          )}
          {dep.error && (
            <p class="error" role="alert">
              {dep.error}
            </p>
          )}
          <FormError error={cancel.error} />
          <FormError error={redeploy.error} />
          <h2>Build log</h2>
          <pre
            ref={pre}
            class="log build-log"
            tabIndex={0}
            aria-label="Build log"
            aria-live="off"
            onScroll={(e) => {
              const el = e.currentTarget;
              stick.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 20;
            }}
          >
            {log.text || (log.done ? 'No build output.' : 'Waiting for build output…')}
          </pre>
          <p class="status-line" role="status">
            {log.done ? `Finished: the deployment is ${dep.state}.` : `Following… (${dep.state})`}
          </p>
        </>
      )}
    </Async>
  );
}
