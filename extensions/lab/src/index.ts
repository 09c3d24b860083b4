import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, ICommandPalette, Notification, showDialog } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import {
  apiBlobUrl,
  apiGet,
  IImage,
  IPreset,
  IPublished,
  IStudy,
  post
} from './request';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
  '<circle cx="8" cy="9" r="4"/><circle cx="16" cy="9" r="4" opacity=".6"/>' +
  '<circle cx="12" cy="16" r="4" opacity=".8"/></g></svg>';
const plexhubIcon = new LabIcon({ name: 'plexhub:studies', svgstr: ICON_SVG });

const FINAL = new Set(['ready', 'failed']);
const POLL_MS = 3000;

/** The Python of a viewer cell (plexhub.widgets.Viewer on an API image and preset). */
export function viewerSource(imageId: string, presetId: string | null): string {
  const preset = presetId ? `, preset=${JSON.stringify(presetId)}` : '';
  return (
    'from plexhub.widgets import Viewer\n\n' +
    `viewer = Viewer(${JSON.stringify(imageId)}${preset})\nviewer`
  );
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, v);
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

/** The left-side panel: the user's studies, their images and presets. */
class StudiesPanel extends Widget {
  private body: HTMLElement;
  private timers = new Set<number>();

  constructor(private readonly open: (image: IImage, preset: string | null) => Promise<void>) {
    super();
    this.id = 'plexhub-studies';
    this.addClass('plexhub-studies');
    this.title.icon = plexhubIcon;
    this.title.caption = 'plexhub studies';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'plexhub studies');
    const header = el('div', { class: 'plexhub-studies-header' });
    header.appendChild(el('span', {}, 'Studies'));
    const refresh = el('button', {
      class: 'jp-Button jp-mod-minimal plexhub-refresh',
      title: 'Refresh the studies',
      'aria-label': 'Refresh the studies'
    }, '⟳');
    refresh.addEventListener('click', () => void this.refresh());
    header.appendChild(refresh);
    this.body = el('div', { class: 'plexhub-studies-body' });
    this.node.append(header, this.body);
  }

  private state(text: string, error = false): void {
    this.body.replaceChildren(
      el('div', { class: `plexhub-state${error ? ' plexhub-error' : ''}`, role: 'status' }, text)
    );
  }

  async refresh(): Promise<void> {
    this.timers.forEach(t => window.clearTimeout(t));
    this.timers.clear();
    this.state('Loading studies…');
    let studies: IStudy[];
    try {
      studies = await apiGet<IStudy[]>('studies');
    } catch (err) {
      this.state(`Could not load the studies: ${(err as Error).message}. Try ⟳ again.`, true);
      return;
    }
    if (!studies.length) {
      this.state('No study is shared with you yet: ask the study director for access.');
      return;
    }
    const list = el('div', { role: 'list', 'aria-label': 'Studies' });
    for (const study of studies) {
      list.appendChild(this.studyNode(study));
    }
    this.body.replaceChildren(list);
  }

  private studyNode(study: IStudy): HTMLElement {
    const details = el('details', {
      class: 'plexhub-study',
      role: 'listitem',
      'data-study': study.code
    });
    const summary = el('summary');
    summary.append(
      el('span', { class: 'plexhub-study-code' }, study.code),
      el('span', { class: 'plexhub-study-title' }, study.title)
    );
    const images = el('div', { class: 'plexhub-images', role: 'list', 'aria-label': `Images of ${study.code}` });
    details.append(summary, images);
    let loaded = false;
    details.addEventListener('toggle', () => {
      if (details.open && !loaded) {
        loaded = true;
        void this.loadImages(study, images);
      }
    });
    return details;
  }

  private async loadImages(study: IStudy, box: HTMLElement): Promise<void> {
    box.replaceChildren(el('div', { class: 'plexhub-state', role: 'status' }, 'Loading images…'));
    let images: IImage[];
    try {
      images = await apiGet<IImage[]>(`studies/${encodeURIComponent(study.code)}/images`);
    } catch (err) {
      box.replaceChildren(
        el('div', { class: 'plexhub-state plexhub-error' }, `Could not load the images: ${(err as Error).message}`)
      );
      return;
    }
    if (!images.length) {
      box.replaceChildren(el('div', { class: 'plexhub-state' }, 'No images in this study yet.'));
      return;
    }
    box.replaceChildren(...images.map(image => this.imageNode(image)));
    if (images.some(i => !FINAL.has(i.status))) {
      const t = window.setTimeout(() => {
        this.timers.delete(t);
        void this.loadImages(study, box);
      }, POLL_MS);
      this.timers.add(t);
    }
  }

  private imageNode(image: IImage): HTMLElement {
    const row = el('div', { class: 'plexhub-image', role: 'listitem', 'data-image': image.id });
    const thumb = el('img', { class: 'plexhub-thumb', alt: `Thumbnail of ${image.name}` });
    row.appendChild(thumb);
    const head = el('div');
    head.append(
      el('span', { class: 'plexhub-image-name' }, image.name),
      el('span', { class: 'plexhub-badge', 'data-status': image.status, title: 'conversion state' },
        image.status)
    );
    row.appendChild(head);
    const channels = el('div', { class: 'plexhub-channels', 'aria-label': 'Channels' });
    for (const ch of image.channels) {
      const c = el('span', { class: 'plexhub-channel' });
      const sw = el('span', { class: 'plexhub-swatch', 'aria-hidden': 'true' });
      sw.style.background = ch.color.startsWith('#') ? ch.color : `#${ch.color}`;
      c.append(sw, document.createTextNode(ch.label));
      channels.appendChild(c);
    }
    row.appendChild(channels);
    const meta = Object.entries(image.metadata || {})
      .filter(([, v]) => typeof v === 'string' || typeof v === 'number')
      .slice(0, 4)
      .map(([k, v]) => `${k}: ${v}`)
      .join(' · ');
    if (meta) {
      row.appendChild(el('div', { class: 'plexhub-meta' }, meta));
    }
    if (image.status !== 'ready') {
      thumb.alt = `${image.name}: ${image.status}`;
      return row;
    }
    void apiBlobUrl(`images/${encodeURIComponent(image.id)}/thumbnail.png?max=112`)
      .then(url => (thumb.src = url))
      .catch(() => (thumb.alt = 'no thumbnail'));
    const actions = el('div', { class: 'plexhub-actions' });
    const select = el('select', { 'aria-label': `Preset for ${image.name}`, class: 'plexhub-preset' });
    select.appendChild(el('option', { value: '' }, 'default view'));
    void apiGet<IPreset[]>(`images/${encodeURIComponent(image.id)}/presets`).then(presets => {
      for (const p of presets) {
        select.appendChild(el('option', { value: p.id }, `${p.name} (${p.scope}, v${p.latest_version})`));
      }
    }).catch(() => undefined);
    const button = el('button', {
      class: 'jp-Button jp-mod-styled jp-mod-accept plexhub-open',
      'aria-label': `Open ${image.name} in a viewer`
    }, 'Open');
    button.addEventListener('click', () => void this.open(image, select.value || null));
    actions.append(select, button);
    row.appendChild(actions);
    return row;
  }
}

async function notebookFor(app: JupyterFrontEnd, tracker: INotebookTracker): Promise<NotebookPanel> {
  const current = tracker.currentWidget;
  if (current) {
    return current;
  }
  const panel = (await app.commands.execute('notebook:create-new', {
    kernelName: 'python3'
  })) as NotebookPanel;
  await panel.context.ready;
  return panel;
}

async function openImage(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  image: IImage,
  preset: string | null
): Promise<void> {
  const panel = await notebookFor(app, tracker);
  app.shell.activateById(panel.id);
  const notebook = panel.content;
  const active = notebook.activeCell;
  const empty = active && active.model.type === 'code' && !active.model.sharedModel.getSource().trim();
  if (!empty) {
    NotebookActions.insertBelow(notebook);
  }
  notebook.activeCell!.model.sharedModel.setSource(viewerSource(image.id, preset));
  await panel.sessionContext.ready;
  await NotebookActions.run(notebook, panel.sessionContext);
}

function publishForm(studies: IStudy[], name: string): Widget {
  const body = new Widget();
  body.addClass('plexhub-publish');
  const studyLabel = el('label', { for: 'plexhub-publish-study' }, 'Study');
  const study = el('select', { id: 'plexhub-publish-study', name: 'study' });
  for (const s of studies) {
    study.appendChild(el('option', { value: s.code }, `${s.code} — ${s.title}`));
  }
  const nameLabel = el('label', { for: 'plexhub-publish-name' }, 'Name');
  const nameInput = el('input', { id: 'plexhub-publish-name', name: 'name', value: name });
  const noteLabel = el('label', { for: 'plexhub-publish-reason' }, 'Version note');
  const note = el('textarea', { id: 'plexhub-publish-reason', name: 'reason', rows: '3' });
  body.node.append(studyLabel, study, nameLabel, nameInput, noteLabel, note);
  return body;
}

async function publish(tracker: INotebookTracker): Promise<void> {
  const panel = tracker.currentWidget;
  if (!panel) {
    return;
  }
  let studies: IStudy[];
  try {
    studies = await apiGet<IStudy[]>('studies');
  } catch (err) {
    Notification.error(`Cannot list the studies: ${(err as Error).message}`);
    return;
  }
  if (!studies.length) {
    Notification.warning('No study is shared with you: there is nowhere to publish to.');
    return;
  }
  const stem = panel.context.path.split('/').pop()!.replace(/\.ipynb$/, '');
  const form = publishForm(studies, stem);
  const result = await showDialog({
    title: 'Publish notebook to study',
    body: form,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Publish' })]
  });
  if (!result.button.accept) {
    return;
  }
  const value = (n: string) =>
    (form.node.querySelector(`[name="${n}"]`) as HTMLInputElement).value.trim();
  await panel.context.save();
  try {
    const done = await post<IPublished>('publish', {
      path: panel.context.path,
      study: value('study'),
      name: value('name') || stem,
      reason: value('reason')
    });
    Notification.success(`Published “${done.name}” version ${done.version} to ${value('study')}`, {
      autoClose: 5000
    });
  } catch (err) {
    Notification.error(`Publishing failed: ${(err as Error).message}`);
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'plexhub:studies',
  description: 'plexhub: the Studies panel and publishing notebooks to a study',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new StudiesPanel((image, preset) => openImage(app, tracker, image, preset));
    app.shell.add(panel, 'left', { rank: 150 });
    restorer?.add(panel, 'plexhub-studies');
    void panel.refresh();

    const command = 'plexhub:publish-notebook';
    app.commands.addCommand(command, {
      label: 'Publish notebook to study',
      caption: 'Publish the current notebook (saved first) as the next version in a study',
      isEnabled: () => tracker.currentWidget !== null,
      execute: () => publish(tracker)
    });
    palette?.addItem({ command, category: 'plexhub' });
    app.commands.addCommand('plexhub:refresh-studies', {
      label: 'Refresh plexhub studies',
      execute: () => panel.refresh()
    });
    palette?.addItem({ command: 'plexhub:refresh-studies', category: 'plexhub' });
  }
};

export default plugin;
