// JSON over fetch. Errors come back as {ok: false, status, message}; the API's error body is
// {"error": {"code", "message", "details"}}. Status 0 means the API could not be reached.

export async function api(path, { method = 'GET', body } = {}) {
  let resp;
  try {
    resp = await fetch(path, {
      method,
      cache: 'no-store',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    return { ok: false, status: 0, message: 'the API is not reachable', data: null };
  }
  let data = null;
  if (resp.status !== 204) {
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
  }
  if (resp.ok) return { ok: true, status: resp.status, data, message: '' };
  const message = data?.error?.message || data?.detail || `HTTP ${resp.status}`;
  return { ok: false, status: resp.status, data, message: String(message) };
}
