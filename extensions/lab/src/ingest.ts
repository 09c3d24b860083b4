import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { el, field } from './dom';
import { JobsStatus } from './jobs';
import {
  apiGet,
  fileName,
  IIngested,
  IJob,
  IStudy,
  learn,
  needsOf,
  post,
  RequestError
} from './request';
import { studiesToChoose } from './studies';

const ACTION = 'image.ingest';
const FOLLOW_MS = 1000;
const FINISHED = new Set(['done', 'failed', 'cancelled']);

class IngestForm extends Widget {
  constructor(studies: IStudy[], paths: string[], study: string, reason: string, message: string) {
    super();
    this.addClass('plexhub-form');
    if (message) {
      this.node.appendChild(el('p', { class: 'plexhub-form-message', role: 'alert' }, message));
    }
    const files = el('ul', { class: 'plexhub-form-files', 'aria-label': 'Files to ingest' });
    for (const p of paths) {
      files.appendChild(el('li', {}, p));
    }
    this.node.appendChild(files);
    const select = el('select');
    for (const s of studies) {
      const option = el('option', { value: s.code }, `${s.code} — ${s.title}`);
      option.selected = s.code === study;
      select.appendChild(option);
    }
    const why = el('textarea', { rows: '2', placeholder: 'Why these files are added' });
    why.value = reason;
    this.node.append(field('study', 'Study', select), field('reason', 'Reason for change', why));
    const show = () => {
      const box = this.node.querySelector<HTMLElement>('[data-field="reason"]')!;
      box.hidden = !needsOf(ACTION, select.value).reason;
    };
    select.addEventListener('change', show);
    show();
  }

  values(): { study: string; reason: string } {
    const value = (n: string) =>
      (this.node.querySelector(`[name="${n}"]`) as HTMLInputElement).value;
    return { study: value('study'), reason: value('reason').trim() };
  }
}

/** Follow a conversion job until it ends, in one notification (progress, then the end
 * state with the API's message). */
async function follow(job: IJob, status: JobsStatus): Promise<void> {
  const name = fileName(job.source) || job.id;
  const id = Notification.emit(`Converting ${name} into ${job.study}…`, 'in-progress', {
    autoClose: false
  });
  for (;;) {
    await new Promise(resolve => window.setTimeout(resolve, FOLLOW_MS));
    try {
      job = await apiGet<IJob>(`jobs/${encodeURIComponent(job.id)}`);
    } catch (err) {
      Notification.update({
        id,
        message: `Cannot follow the conversion of ${name}: ${(err as Error).message}`,
        type: 'error',
        autoClose: false
      });
      return;
    }
    status.seen(job);
    if (FINISHED.has(job.state)) {
      break;
    }
    Notification.update({
      id,
      message: `Converting ${name} into ${job.study}: ${Math.round(job.progress * 100)} %`,
      type: 'in-progress',
      progress: job.progress
    });
  }
  if (job.state === 'done') {
    Notification.update({
      id,
      message: `${name} is ready in study ${job.study}`,
      type: 'success',
      autoClose: 5000
    });
  } else {
    Notification.update({
      id,
      message: `Converting ${name} ${job.state === 'failed' ? 'failed' : 'was cancelled'}` +
        (job.error ? `: ${job.error}` : ''),
      type: 'error',
      autoClose: false
    });
  }
}

/** "Ingest into a plexhub study": the file browser's selection, each file posted by the
 * server extension with the user's token; each job followed until it ends. */
export async function ingestFiles(paths: string[], status: JobsStatus): Promise<void> {
  if (!paths.length) {
    return;
  }
  const studies = await studiesToChoose('ingest into');
  if (!studies) {
    return;
  }
  let study = studies[0].code;
  let reason = '';
  let message = '';
  let todo = [...paths];
  while (todo.length) {
    const form = new IngestForm(studies, todo, study, reason, message);
    const result = await showDialog({
      title: todo.length === 1 ? `Ingest ${fileName(todo[0])}` : `Ingest ${todo.length} files`,
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Ingest' })]
    });
    if (!result.button.accept) {
      return;
    }
    ({ study, reason } = form.values());
    message = '';
    const left: string[] = [];
    for (const path of todo) {
      try {
        const done = await post<IIngested>('ingest', { path, study, reason });
        if (done.existing) {
          Notification.info(`${fileName(path)} is already in study ${study}`, { autoClose: 5000 });
          continue;
        }
        const job = await apiGet<IJob>(`jobs/${encodeURIComponent(done.job_id)}`);
        status.seen(job);
        void follow(job, status);
      } catch (err) {
        const known = needsOf(ACTION, study).reason;
        if (learn(ACTION, study, err) || (known && err instanceof RequestError &&
            err.status === 422 && !reason)) {
          message = `Study ${study} asks for a reason for change.`;
          left.push(path);
          continue;
        }
        Notification.error(`Ingesting ${fileName(path)} failed: ${(err as Error).message}`, {
          autoClose: false
        });
      }
    }
    todo = left;
  }
}
