// The dashboard's entry: finds out who is signed in, then routes.

import { render } from 'preact';
import { useEffect } from 'preact/hooks';
import { Redirect, Route, Switch, useLocation } from 'wouter-preact';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { ApiError, api, setCsrf } from './api/client';
import { ConnectionBanner, Loading } from './components';
import { Layout } from './layout';
import { me, useStore } from './store';
import { Login } from './pages/login';
import { Apps, NewAppPage } from './pages/apps';
import { Overview } from './pages/overview';
import { Deployments } from './pages/deployments';
import { DeploymentPage } from './pages/deployment';
import { Logs } from './pages/logs';
import { Env } from './pages/env';
import { Domains } from './pages/domains';
import { Containers } from './pages/containers';
import { Source } from './pages/source';
import { Audit } from './pages/audit';
import { Tokens } from './pages/tokens';
import { Workers } from './pages/workers';
import { Users } from './pages/users';
import { GitSettings } from './pages/git';
import { Alerts } from './pages/alerts';
import { Usage } from './pages/usage';
import { Notifications } from './pages/notifications';

async function whoAmI(): Promise<void> {
  try {
    const s = await api.session();
    setCsrf(s.csrf_token);
    me.set(s.user);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) me.set(null);
    else throw e;
  }
}

function Root() {
  const user = useStore(me);
  const [location, navigate] = useLocation();
  useEffect(() => {
    void whoAmI().catch(() => me.set(null));
  }, []);
  useEffect(() => {
    if (user === null && location !== '/login') navigate('/login');
    if (user && location === '/login') navigate('/apps');
  }, [user, location]);
  if (user === undefined) return <Loading what="the dashboard" />;
  if (user === null) return <Login />;
  return (
    <Layout user={user}>
      <Switch>
        <Route path="/">{() => <Redirect to="/apps" />}</Route>
        <Route path="/apps" component={Apps} />
        <Route path="/apps/new" component={NewAppPage} />
        <Route path="/apps/:slug">{(p) => <Overview slug={p.slug} />}</Route>
        <Route path="/apps/:slug/deployments">{(p) => <Deployments slug={p.slug} />}</Route>
        <Route path="/apps/:slug/logs">{(p) => <Logs slug={p.slug} />}</Route>
        <Route path="/apps/:slug/env">{(p) => <Env slug={p.slug} />}</Route>
        <Route path="/apps/:slug/domains">{(p) => <Domains slug={p.slug} />}</Route>
        <Route path="/apps/:slug/containers">{(p) => <Containers slug={p.slug} />}</Route>
        <Route path="/apps/:slug/source">{(p) => <Source slug={p.slug} />}</Route>
        <Route path="/apps/:slug/alerts">{(p) => <Alerts slug={p.slug} />}</Route>
        <Route path="/apps/:slug/usage">{(p) => <Usage slug={p.slug} />}</Route>
        <Route path="/deployments/:id">{(p) => <DeploymentPage id={Number(p.id)} />}</Route>
        <Route path="/tokens" component={Tokens} />
        <Route path="/settings/git" component={GitSettings} />
        <Route path="/notifications" component={Notifications} />
        <Route path="/audit" component={Audit} />
        <Route path="/admin/workers" component={Workers} />
        <Route path="/admin/users" component={Users} />
        <Route>
          <h1>Not found</h1>
          <p>There is no page here. <a href="/apps">Your apps</a></p>
        </Route>
      </Switch>
    </Layout>
  );
}

const root = document.getElementById('app');
if (root) {
  render(
    <>
      <ConnectionBanner />
      <Root />
    </>,
    root,
  );
}
