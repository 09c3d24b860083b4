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
}
