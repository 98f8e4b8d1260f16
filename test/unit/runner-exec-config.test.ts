import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { execCapabilities, loadExecConfig, parseExecConfig } from '../../node/exec-config.ts'
import { tempDir } from '../helpers.ts'

const VALID = `
commands:
  integrate:
    argv: ["python3", "/opt/sims/integrate.py", "--seed", "{seed}", "--from", "{start}", "--to", "{end}", "--n", 5]
    env: { OMP_NUM_THREADS: 1 }
    cwd: /tmp
  report-2:
    argv: ["/usr/bin/env", "--json={{\\"run\\": \\"{campaign}\\"}}", "{params.alpha}"]
`

const problemsOf = (text: string): string => {
  try {
    parseExecConfig(text, 'exec.yaml')
  } catch (err) {
    return (err as Error).message
  }
  throw new Error('expected the config to be refused')
}

describe('exec config', () => {
  it('loads YAML templates, reading numbers as the text they stand for', async () => {
    const dir = await tempDir()
    try {
      const file = join(dir.path, 'exec.yaml')
      await writeFile(file, VALID)
      expect(await loadExecConfig(file)).toEqual({
        integrate: {
          argv: ['python3', '/opt/sims/integrate.py', '--seed', '{seed}', '--from', '{start}', '--to', '{end}', '--n', '5'],
          env: { OMP_NUM_THREADS: '1' },
          cwd: '/tmp'
        },
        'report-2': { argv: ['/usr/bin/env', '--json={{"run": "{campaign}"}}', '{params.alpha}'] }
      })
    } finally {
      await dir.remove()
    }
  })

  it('loads JSON too', () => {
    expect(parseExecConfig('{"commands": {"a": {"argv": ["/bin/true"]}}}', 'exec.json')).toEqual({ a: { argv: ['/bin/true'] } })
  })

  it.each([
    ['an unknown placeholder', 'commands:\n  sim:\n    argv: ["sim", "--seed", "{sed}"]',
      'commands.sim.argv[2]: "{sed}" uses the unknown placeholder {sed}; known: {seed}, {index}, {start}, {end}, {attempt}, {campaign}, {params.NAME}'],
    ['a lone brace', 'commands:\n  sim:\n    argv: ["sim", "{seed"]', "commands.sim.argv[1]: \"{seed\" has a lone '{'; write {{ or }} for a literal brace"],
    ['a placeholder in the program', 'commands:\n  sim:\n    argv: ["{params.program}"]',
      'commands.sim.argv[0]: the program (argv[0]) must be a fixed, non-empty path or name, without placeholders'],
    ['an empty argv', 'commands:\n  sim:\n    argv: []', 'commands.sim.argv: needs at least the program to run'],
    ['a bad command name', 'commands:\n  Big_Sim:\n    argv: ["sim"]', 'commands.Big_Sim: command names are 1-64 lower case letters'],
    ['a misspelt key', 'commands:\n  sim:\n    args: ["sim"]', 'commands.sim: Unrecognized key: "args"'],
    ['a relative cwd', 'commands:\n  sim:\n    argv: ["sim"]\n    cwd: work', 'commands.sim.cwd: must be an absolute path'],
    ['a reserved variable', 'commands:\n  sim:\n    argv: ["sim"]\n    env: { ZP_SEED: "1" }', 'commands.sim.env.ZP_SEED: is set by the runner for each shard'],
    ['no commands', 'command: {}', 'commands: Invalid input: expected record, received undefined'],
    ['broken YAML', 'commands: [', 'exec.yaml: not valid YAML or JSON: ']
  ])('refuses %s, naming the field', (_what, text, problem) => {
    const message = problemsOf(text)
    expect(message).toMatch(/^exec\.yaml: /)
    expect(message).toContain(problem)
  })

  it('says which file it could not read', async () => {
    await expect(loadExecConfig('/nonexistent/exec.yaml')).rejects.toThrow(/^cannot read the exec config \/nonexistent\/exec\.yaml: ENOENT/)
  })

  it('advertises each template as exec.<name>, unavailable where its program is missing', async () => {
    const caps = await execCapabilities({
      shell: { argv: ['sh', '-c', 'true'] },
      absolute: { argv: ['/bin/true'] },
      missing: { argv: ['zp-no-such-program'] }
    })
    expect(caps).toEqual({
      'exec.shell': { status: 'ok', info: { argv0: 'sh' } },
      'exec.absolute': { status: 'ok', info: { argv0: '/bin/true' } },
      'exec.missing': { status: 'unavailable', reason: 'zp-no-such-program is not an executable file on PATH' }
    })
  })
})
