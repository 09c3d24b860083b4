import { Notification } from '@jupyterlab/apputils';

import { apiGet, IStudy } from './request';

/** The studies shared with the user, for a dialog that picks one (publish, ingest); null,
 * after a notification that says why, when they cannot be listed or there is none. */
export async function studiesToChoose(nowhere: string): Promise<IStudy[] | null> {
  let studies: IStudy[];
  try {
    studies = await apiGet<IStudy[]>('studies');
  } catch (err) {
    Notification.error(`Cannot list the studies: ${(err as Error).message}`);
    return null;
  }
  if (!studies.length) {
    Notification.warning(`No study is shared with you: there is nowhere to ${nowhere}.`);
    return null;
  }
  return studies;
}
