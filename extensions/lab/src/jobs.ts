import { Widget } from '@lumino/widgets';

import { apiGet, fileName, IJob } from './request';

const ACTIVE_MS = 3000; // while conversions run
const IDLE_MS = 30000; // otherwise: a modest poll, and none while the page is hidden
const KEEP_FINISHED = 5;
const FINISHED = new Set(['done', 'failed', 'cancelled']);

function line(job: IJob): string {
  const name = fileName(job.source) || job.id;
  const state =
    job.state === 'running' ? `running ${Math.round(job.progress * 100)} %` : job.state;
  return `${name} (${job.study}): ${state}${job.error ? ` (${job.error})` : ''}`;
}

/** The status bar's item: how many conversion jobs run in the studies the user sees (the
 * list and the last finished ones in its tooltip), polled through the server extension. */
export class JobsStatus extends Widget {
  private running = new Map<string, IJob>();
  private finished: IJob[] = [];
  private timer = 0;
  private polling = false;
  private started = false;

  constructor() {
    super({ node: document.createElement('div') });
    this.addClass('plexhub-jobs-status');
    this.node.setAttribute('role', 'status');
    this.node.setAttribute('aria-label', 'plexhub conversion jobs');
    this.render();
    this.hide(); // until start(): no API, no item
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  dispose(): void {
    document.removeEventListener('visibilitychange', this.onVisibility);
    window.clearTimeout(this.timer);
    super.dispose();
  }

  /** Start polling (when the server extension has an API). */
  start(): void {
    this.started = true;
    this.show();
    void this.poll();
  }

  /** A job this page started or followed: shown at once, polled sooner. */
  seen(job: IJob): void {
    if (FINISHED.has(job.state)) {
      this.running.delete(job.id);
      this.remember(job);
    } else {
      this.running.set(job.id, job);
      this.schedule(ACTIVE_MS);
    }
    this.render();
  }

  private onVisibility = (): void => {
    if (document.hidden) {
      window.clearTimeout(this.timer);
      this.timer = 0;
    } else if (this.started) {
      void this.poll();
    }
  };

  private schedule(ms: number): void {
    if (document.hidden || !this.started) {
      return;
    }
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => void this.poll(), ms);
  }

  private remember(job: IJob): void {
    this.finished = [job, ...this.finished.filter(j => j.id !== job.id)].slice(0, KEEP_FINISHED);
  }

  private async poll(): Promise<void> {
    if (this.polling || document.hidden) {
      return;
    }
    this.polling = true;
    window.clearTimeout(this.timer);
    try {
      const jobs = await apiGet<IJob[]>('jobs');
      const now = new Map(jobs.map(j => [j.id, j]));
      for (const [id, old] of this.running) {
        if (!now.has(id)) {
          // finished since the last poll: its end state and message
          this.remember(await apiGet<IJob>(`jobs/${encodeURIComponent(id)}`).catch(() => old));
        }
      }
      this.running = now;
      this.node.classList.remove('plexhub-error');
      this.render();
    } catch (err) {
      this.node.classList.add('plexhub-error');
      this.node.title = `Cannot read the conversion jobs: ${(err as Error).message}`;
    } finally {
      this.polling = false;
      this.schedule(this.running.size ? ACTIVE_MS : IDLE_MS);
    }
  }

  private render(): void {
    const n = this.running.size;
    this.node.dataset.running = String(n);
    this.node.textContent = n
      ? `⟳ ${n} conversion${n === 1 ? '' : 's'} running`
      : 'No conversions running';
    const lines = [...this.running.values()].map(line);
    if (this.finished.length) {
      lines.push('Finished:', ...this.finished.map(line));
    }
    this.node.title = lines.length ? lines.join('\n') : 'No plexhub conversion jobs';
  }
}
