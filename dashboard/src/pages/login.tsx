// Sign in with email and password: a session cookie (HttpOnly) and its CSRF token.

import { useState } from 'preact/hooks';
import { useLocation } from 'wouter-preact';
import { api, setCsrf } from '../api/client';
import { Field, FormError } from '../components';
import { useSubmit } from '../hooks';
import { me } from '../store';

export function Login() {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [, navigate] = useLocation();
  const submit = useSubmit(async () => {
    const s = await api.login(email, password);
    setCsrf(s.csrf_token);
    me.set(s.user);
    navigate('/apps');
  });
  return (
    <main id="main" class="narrow">
      <h1>Sign in to WiseHosting</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void submit.run();
        }}
      >
        <Field label="Email" name="email" error={submit.error}>
          {(id, d, bad) => (
            <input id={id} type="email" autoComplete="username" required value={email} aria-describedby={d} aria-invalid={bad} onInput={(e) => setEmail(e.currentTarget.value)} />
          )}
        </Field>
        <Field label="Password" name="password" error={submit.error}>
          {(id, d, bad) => (
            <input id={id} type="password" autoComplete="current-password" required value={password} aria-describedby={d} aria-invalid={bad} onInput={(e) => setPassword(e.currentTarget.value)} />
          )}
        </Field>
        <FormError error={submit.error} fields={['email', 'password']} />
        <button type="submit" class="primary" disabled={submit.busy}>
          {submit.busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
