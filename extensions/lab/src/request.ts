import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The server extension's routes (plexhub.extensions): it forwards to the plexhub API with
 * the server's own token, so no token ever reaches this page. */
const settings = ServerConnection.makeSettings();

export class RequestError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const url = URLExt.join(settings.baseUrl, 'plexhub', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = body.detail || body.message || detail;
    } catch {
      /* not JSON */
    }
    throw new RequestError(`${detail} (${response.status})`, response.status);
  }
  return response;
}

/** The server extension's own answer: whether it knows an API to forward to. */
export async function apiConfigured(): Promise<boolean> {
  const config = (await (await call('config')).json()) as { api: boolean };
  return config.api;
}

/** GET a JSON document of the plexhub API, ``path`` under ``/api/v1/``. */
export async function apiGet<T>(path: string): Promise<T> {
  return (await call(`api/${path}`)).json() as Promise<T>;
}

/** An image of the API (a thumbnail) as an object URL. */
export async function apiBlobUrl(path: string): Promise<string> {
  return URL.createObjectURL(await (await call(`api/${path}`)).blob());
}

export async function post<T>(path: string, body: unknown): Promise<T> {
  const response = await call(path, {
    method: 'POST',
    body: JSON.stringify(body)
  });
  return response.json() as Promise<T>;
}

export interface IStudy {
  code: string;
  title: string;
  sponsor: string;
  state: string;
}

export interface IChannel {
  index: number;
  label: string;
  marker: string | null;
  color: string;
}

export interface IImage {
  id: string;
  study: string;
  name: string;
  status: string;
  levels: number[][];
  channels: IChannel[];
  metadata: Record<string, unknown>;
}

export interface IPreset {
  id: string;
  name: string;
  scope: string;
  is_default: boolean;
  latest_version: number;
}

export interface IPublished {
  id: string;
  name: string;
  version: number;
  signatures?: { signer: string; meaning: string }[];
}

export interface IJob {
  id: string;
  state: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  progress: number;
  error: string | null;
  study: string;
  source: string;
  image_ids: string[];
}

export interface IIngested {
  job_id: string;
  image_id: string;
  image_ids: string[];
  existing: boolean;
}

/** What a study's compliance profile asks of an action, as the API's 422 answers name it
 * (``reason: is required`` / ``credential: is required``); learnt per action and study. */
export interface INeeds {
  reason: boolean;
  credential: boolean;
}

const learnt = new Map<string, INeeds>();

export function needsOf(action: string, study: string): INeeds {
  return learnt.get(`${action}:${study}`) ?? { reason: false, credential: false };
}

/** Learn from an API error what the study asks for; true when it named something new. */
export function learn(action: string, study: string, err: unknown): boolean {
  if (!(err instanceof RequestError) || err.status !== 422) {
    return false;
  }
  const needs = { ...needsOf(action, study) };
  const before = needs.reason && needs.credential;
  let named = false;
  if (/\breason: is required/.test(err.message) && !needs.reason) {
    needs.reason = named = true;
  }
  if (/\bcredential: is required/.test(err.message) && !needs.credential) {
    needs.credential = named = true;
  }
  learnt.set(`${action}:${study}`, needs);
  return named && !before;
}

export function fileName(path: string): string {
  return path.split('/').filter(Boolean).pop() ?? path;
}
