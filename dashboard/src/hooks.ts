// Data loading for pages: a resource loaded on mount, optionally polled while the tab is
// visible, with its error kept for the page to show (never a blank page).

import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api/client';
import { navigate } from 'wouter-preact/use-browser-location';
import { me } from './store';

export interface Resource<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
  set: (v: T) => void;
}

/** Runs `load` on mount and when `deps` change; again every `every` ms while the tab is visible. */
export function useResource<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[], every?: number): Resource<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const v = await loadRef.current(ctl.signal);
        if (ctl.signal.aborted) return;
        setData(v);
        setError(undefined);
      } catch (e) {
        if (ctl.signal.aborted) return;
        if (e instanceof ApiError && e.status === 401) {
          // The session ended (expired, or signed out elsewhere).
          me.set(null);
          navigate('/login');
          return;
        }
        setError(e as Error);
      } finally {
        if (!ctl.signal.aborted) setLoading(false);
      }
      if (every && !ctl.signal.aborted) timer = setTimeout(wait, every);
    };
    // Hidden tabs do not poll; showing the tab again loads at once.
    const wait = () => {
      if (document.visibilityState === 'visible') void run();
      else document.addEventListener('visibilitychange', onVisible);
    };
    const onVisible = () => {
      if (document.visibilityState !== 'visible') return;
      document.removeEventListener('visibilitychange', onVisible);
      void run();
    };
    void run();
    return () => {
      ctl.abort();
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [...deps, tick, every]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload, set: setData };
}

/** A form's submit state: busy while `action` runs, its error kept for the fields to show. */
export function useSubmit<A extends unknown[]>(action: (...args: A) => Promise<void>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | undefined>(undefined);
  const run = async (...args: A) => {
    setBusy(true);
    setError(undefined);
    try {
      await action(...args);
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, setError };
}
