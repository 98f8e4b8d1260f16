import type { Allocation, EngineView, RayUp } from '../../protocols/bridge/schema.ts'
import type { BridgeEngine, JoinCommand } from '../bridge/engine.ts'

/**
 * Ray capacity: one job submitted through the Jobs REST API whose
 * launcher (bootstrap/ray/launcher.py) starts one Ray task per mesh node,
 * each running `zp-node join` labelled bridge=ray, zp.bridge=<allocation id>.
 */
export function rayEngine (): BridgeEngine<RayUp> {
  return {
    engine: 'ray',
    async up (_options: RayUp, _join: JoinCommand, _signal: AbortSignal): Promise<{ id: string, engineId: string, requested: number }> {
      throw new Error('the Ray bridge is not built yet')
    },
    async view (_alloc: Allocation, _signal: AbortSignal): Promise<EngineView> {
      throw new Error('the Ray bridge is not built yet')
    },
    async down (_alloc: Allocation, _signal: AbortSignal): Promise<void> {
      throw new Error('the Ray bridge is not built yet')
    }
  }
}
