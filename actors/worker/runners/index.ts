import { createExecRunner, type ExecRunnerOptions } from './exec-runner.ts'
import { createModuleRunner, type ModuleRunner, type ModuleRunnerOptions } from './module-runner.ts'
import { createOnnxRunner, type OnnxRunner, type OnnxRunnerOptions } from './onnx-runner.ts'
import type { Runner, RunnerEnvironment } from './types.ts'

export type { ModuleRunner, ModuleRunnerOptions } from './module-runner.ts'
export type { OnnxRunner, OnnxRunnerOptions } from './onnx-runner.ts'
export type { ExecRunnerOptions } from './exec-runner.ts'
export * from './types.ts'

export interface Runners {
  module: ModuleRunner
  exec: Runner
  onnx: OnnxRunner
}

/** The runner for each workload kind, keyed like Workload['kind']; close() each when the node stops. */
export function createRunners (env: RunnerEnvironment, opts: { module?: ModuleRunnerOptions, exec?: ExecRunnerOptions, onnx?: OnnxRunnerOptions } = {}): Runners {
  return {
    module: createModuleRunner(env, opts.module),
    exec: createExecRunner(env, opts.exec),
    onnx: createOnnxRunner(env, opts.onnx)
  }
}
