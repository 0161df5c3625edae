// Tiny observable values shared across pages (the signed-in user, the connection state),
// with a hook that re-renders a component when one changes.

import { useEffect, useState } from 'preact/hooks';

export class Store<T> {
  private listeners = new Set<(v: T) => void>();
  constructor(private value: T) {}
  get(): T {
    return this.value;
  }
  set(v: T): void {
    if (Object.is(v, this.value)) return;
    this.value = v;
    for (const l of this.listeners) l(v);
  }
  subscribe(l: (v: T) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

export function useStore<T>(store: Store<T>): T {
  const [v, setV] = useState(store.get());
  useEffect(() => {
    setV(store.get());
    return store.subscribe(setV);
  }, [store]);
  return v;
}

export const connection = new Store<'ok' | 'lost'>('ok');

export interface Me {
  id: number;
  email: string;
  is_admin: boolean;
}

/** The signed-in user; null when signed out, undefined while finding out. */
export const me = new Store<Me | null | undefined>(undefined);
