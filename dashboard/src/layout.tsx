// The frame of every signed-in page: a skip link, the navigation (admin pages for admins),
// the account and sign-out; and the tabs of one app.

import type { ComponentChildren } from 'preact';
import { Link, useLocation } from 'wouter-preact';
import { api, setCsrf } from './api/client';
import { me, type Me } from './store';

export function Layout(props: { user: Me; children: ComponentChildren }) {
  const [location, navigate] = useLocation();
  const item = (href: string, label: string) => (
    <li>
      <Link href={href} aria-current={location === href || location.startsWith(href + '/') ? 'page' : undefined}>
        {label}
      </Link>
    </li>
  );
  const signOut = async () => {
    try {
      await api.logout();
    } finally {
      setCsrf(null);
      me.set(null);
      navigate('/login');
    }
  };
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link href="/apps" class="brand">
          WiseHosting
        </Link>
        <nav aria-label="Main">
          <ul>
            {item('/apps', 'Apps')}
            {item('/tokens', 'API tokens')}
            {item('/settings/git', 'Git providers')}
            {item('/notifications', 'Notifications')}
            {item('/audit', 'Audit')}
            {props.user.is_admin && item('/admin/workers', 'Workers')}
            {props.user.is_admin && item('/admin/users', 'Users')}
          </ul>
        </nav>
        <div class="account">
          <span class="muted">{props.user.email}</span>
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {props.children}
      </main>
    </>
  );
}

export function AppTabs(props: { slug: string }) {
  const [location] = useLocation();
  const base = `/apps/${props.slug}`;
  const tabs: [string, string][] = [
    [base, 'Overview'],
    [`${base}/deployments`, 'Deployments'],
    [`${base}/logs`, 'Logs'],
    [`${base}/env`, 'Environment'],
    [`${base}/domains`, 'Domains'],
    [`${base}/source`, 'Source'],
    [`${base}/containers`, 'Containers'],
    [`${base}/alerts`, 'Alerts'],
    [`${base}/usage`, 'Usage'],
  ];
  return (
    <>
      <p class="crumbs">
        <Link href="/apps">Apps</Link> / <strong>{props.slug}</strong>
      </p>
      <nav aria-label="App" class="tabs">
        {tabs.map(([href, label]) => (
          <Link key={href} href={href} aria-current={location === href ? 'page' : undefined}>
            {label}
          </Link>
        ))}
      </nav>
    </>
  );
}
