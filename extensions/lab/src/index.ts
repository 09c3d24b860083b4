import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { CommandToolbarButton, LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { el } from './dom';
import { ingestFiles } from './ingest';
import { JobsStatus } from './jobs';
import { publishNotebook } from './publish';
import { apiBlobUrl, apiConfigured, apiGet, IImage, IPreset, IStudy } from './request';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
  '<circle cx="8" cy="9" r="4"/><circle cx="16" cy="9" r="4" opacity=".6"/>' +
  '<circle cx="12" cy="16" r="4" opacity=".8"/></g></svg>';
const plexhubIcon = new LabIcon({ name: 'plexhub:studies', svgstr: ICON_SVG });
const publishIcon = new LabIcon({
  name: 'plexhub:publish',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M5 20h14v-2H5v2zm7-16-6 6h4v6h4v-6h4l-6-6z"/></g></svg>'
});

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

const PUBLISH = 'plexhub:publish-notebook';
const INGEST = 'plexhub:ingest-files';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'plexhub:studies',
  description:
    'plexhub: the Studies panel, publishing notebooks, ingesting files and the jobs status',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer, IFileBrowserFactory, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    browsers: IFileBrowserFactory | null,
    statusBar: IStatusBar | null
  ) => {
    const panel = new StudiesPanel((image, preset) => openImage(app, tracker, image, preset));
    app.shell.add(panel, 'left', { rank: 150 });
    restorer?.add(panel, 'plexhub-studies');
    void panel.refresh();

    const jobs = new JobsStatus();
    statusBar?.registerStatusItem('plexhub:jobs', { item: jobs, align: 'left', rank: 4 });
    void apiConfigured().then(
      api => (api ? jobs.start() : undefined),
      () => undefined // no server extension: the Studies panel says so
    );

    app.commands.addCommand(PUBLISH, {
      label: 'Publish notebook to study',
      caption: 'Publish the current notebook (saved first) as the next version in a study',
      icon: publishIcon,
      isEnabled: () => tracker.currentWidget !== null,
      execute: () => {
        const current = tracker.currentWidget;
        return current ? publishNotebook(current) : undefined;
      }
    });
    palette?.addItem({ command: PUBLISH, category: 'plexhub' });
    // the notebook toolbar's button: near the start, where a narrow toolbar keeps it
    const addButton = (nb: NotebookPanel) => {
      const button = new CommandToolbarButton({
        commands: app.commands,
        id: PUBLISH,
        label: 'Publish',
        caption: 'Publish this notebook to a plexhub study'
      });
      if (!nb.toolbar.insertAfter('save', 'plexhub-publish', button)) {
        nb.toolbar.insertItem(0, 'plexhub-publish', button);
      }
    };
    tracker.forEach(addButton);
    tracker.widgetAdded.connect((_, nb) => addButton(nb));

    const selected = (): string[] => {
      const browser = browsers?.tracker.currentWidget;
      return browser ? Array.from(browser.selectedItems(), item => item.path) : [];
    };
    app.commands.addCommand(INGEST, {
      label: 'Ingest into a plexhub study…',
      caption: 'Convert the selected files into a study (they stay where they are)',
      icon: plexhubIcon,
      isEnabled: () => selected().length > 0,
      execute: () => ingestFiles(selected(), jobs)
    });
    palette?.addItem({ command: INGEST, category: 'plexhub' });
    app.contextMenu.addItem({ command: INGEST, selector: '.jp-DirListing-item', rank: 12 });

    app.commands.addCommand('plexhub:refresh-studies', {
      label: 'Refresh plexhub studies',
      execute: () => panel.refresh()
    });
    palette?.addItem({ command: 'plexhub:refresh-studies', category: 'plexhub' });
  }
};

export default plugin;
