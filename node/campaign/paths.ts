import { realpath } from 'node:fs/promises'
import { resolve, sep } from 'node:path'

/**
 * Where the files a campaign names may be: the campaign file's folder, and
 * the folders this node's operator allows with --data-root. Whatever a
 * campaign names is read, stored and sent to workers, so without this a
 * campaign file could ship any file the node can read (`data: ../../etc/passwd`).
 */
export interface CampaignFolders {
  /** the campaign file's folder (the REST API's baseDir) */
  base: string
  dataRoots?: readonly string[]
}

export type Located = { path: string } | { missing: string } | { outside: string }

/**
 * The real path of `name` (relative to the campaign's folder) when it is
 * inside an allowed folder after every symlink is resolved; nothing of the
 * file is read here. A missing file inside is `missing`; one that would be
 * outside is `outside`, with a message naming the folders and the flag.
 */
export async function locate (name: string, folders: CampaignFolders): Promise<Located> {
  const given = [folders.base, ...folders.dataRoots ?? []].map(f => resolve(f))
  const real = (await Promise.all(given.map(async f => await realpath(f).catch(() => undefined)))).filter(f => f != null)
  const path = resolve(folders.base, name)
  const resolved = await realpath(path).catch(() => undefined)
  // a missing file is judged by its name, so what is outside is refused whether it exists or not
  if (resolved == null) return within(path, [...given, ...real]) ? { missing: path } : { outside: refusal(name, path, folders) }
  return within(resolved, real) ? { path: resolved } : { outside: refusal(name, resolved, folders) }
}

function within (path: string, folders: readonly string[]): boolean {
  return folders.some(f => path.startsWith(f.endsWith(sep) ? f : f + sep))
}

function refusal (name: string, resolved: string, folders: CampaignFolders): string {
  const roots = folders.dataRoots ?? []
  const allowed = `the campaign's folder ${resolve(folders.base)}${roots.length > 0 ? ` or this node's --data-root folders (${roots.map(r => resolve(r)).join(', ')})` : ''}`
  return `${name} resolves to ${resolved}, outside ${allowed}; move the file into the campaign's folder, or start the node with --data-root DIR for a folder that holds it`
}
