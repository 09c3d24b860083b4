import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { el, field } from './dom';
import { IPublished, IStudy, learn, needsOf, post, RequestError } from './request';
import { studiesToChoose } from './studies';

const ACTION = 'notebook.publish';

interface IValues {
  study: string;
  name: string;
  note: string;
  reason: string;
  credential: string;
}

/** The publish form: study, name, version note; the reason and the signature where the
 * chosen study's profile asks for them (learnt from the API's answers). */
class PublishForm extends Widget {
  constructor(studies: IStudy[], values: IValues, message: string) {
    super();
    this.addClass('plexhub-form');
    const study = el('select');
    for (const s of studies) {
      const option = el('option', { value: s.code }, `${s.code} — ${s.title}`);
      option.selected = s.code === values.study;
      study.appendChild(option);
    }
    const name = el('input', { value: values.name, required: '' });
    const note = el('textarea', { rows: '2', placeholder: 'What changed in this version' });
    note.value = values.note;
    const reason = el('textarea', { rows: '2', placeholder: 'Why this is published' });
    reason.value = values.reason;
    const credential = el('input', { type: 'password', autocomplete: 'current-password' });
    if (message) {
      this.node.appendChild(el('p', { class: 'plexhub-form-message', role: 'alert' }, message));
    }
    this.node.append(
      field('study', 'Study', study),
      field('name', 'Name', name),
      field('note', 'Version note', note),
      field('reason', 'Reason for change', reason),
      field('credential', 'Password to sign', credential)
    );
    const signHelp = el(
      'p',
      { class: 'plexhub-form-help', 'data-field': 'credential' },
      'This study needs your electronic signature: type your password again ' +
        '(without one, your own API token).'
    );
    this.node.appendChild(signHelp);
    const show = () => {
      const needs = needsOf(ACTION, study.value);
      this.node.querySelectorAll<HTMLElement>('[data-field="reason"]').forEach(node => {
        node.hidden = !needs.reason;
      });
      this.node.querySelectorAll<HTMLElement>('[data-field="credential"]').forEach(node => {
        node.hidden = !needs.credential;
      });
    };
    study.addEventListener('change', show);
    show();
  }

  values(): IValues {
    const value = (n: string) =>
      (this.node.querySelector(`[name="${n}"]`) as HTMLInputElement).value;
    return {
      study: value('study'),
      name: value('name').trim(),
      note: value('note').trim(),
      reason: value('reason').trim(),
      credential: value('credential')
    };
  }
}

/** "Publish notebook to study": save, then publish the notebook as the next version of its
 * name in the chosen study, asking again for what the study's profile needs. */
export async function publishNotebook(panel: NotebookPanel): Promise<void> {
  const studies = await studiesToChoose('publish to');
  if (!studies) {
    return;
  }
  const stem = panel.context.path.split('/').pop()!.replace(/\.ipynb$/, '');
  let values: IValues = { study: studies[0].code, name: stem, note: '', reason: '', credential: '' };
  let message = '';
  for (;;) {
    const form = new PublishForm(studies, values, message);
    const result = await showDialog({
      title: 'Publish notebook to study',
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Publish' })]
    });
    if (!result.button.accept) {
      return;
    }
    values = form.values();
    await panel.context.save();
    try {
      const done = await post<IPublished>('publish', {
        path: panel.context.path,
        study: values.study,
        name: values.name || stem,
        note: values.note,
        reason: values.reason,
        credential: values.credential || null
      });
      const signed = done.signatures?.length ? ', signed' : '';
      Notification.success(
        `Published “${done.name}” version ${done.version} to ${values.study}${signed}`,
        { autoClose: 5000 }
      );
      return;
    } catch (err) {
      values.credential = '';
      if (learn(ACTION, values.study, err)) {
        const needs = needsOf(ACTION, values.study);
        message =
          `Study ${values.study} asks for ` +
          [needs.reason ? 'a reason for change' : '', needs.credential ? 'your signature' : '']
            .filter(Boolean)
            .join(' and ') +
          '.';
        continue;
      }
      const status = err instanceof RequestError ? err.status : 0;
      const needs = needsOf(ACTION, values.study);
      if ((status === 403 || status === 422) && (needs.reason || needs.credential)) {
        message = (err as Error).message; // a refused signature, a missing reason: ask again
        continue;
      }
      Notification.error(`Publishing failed: ${(err as Error).message}`);
      return;
    }
  }
}
