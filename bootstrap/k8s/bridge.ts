import type { Allocation, EngineView, K8sUp } from '../../protocols/bridge/schema.ts'
import type { BridgeEngine, JoinCommand } from '../bridge/engine.ts'

/**
 * Kubernetes capacity: one Indexed Job (and a Secret with the mesh key)
 * whose pods each run `zp-node join` labelled bridge=k8s,
 * zp.bridge=<allocation id>, through @kubernetes/client-node.
 */
export function k8sEngine (): BridgeEngine<K8sUp> {
  return {
    engine: 'k8s',
    async up (_options: K8sUp, _join: JoinCommand, _signal: AbortSignal): Promise<{ id: string, engineId: string, requested: number }> {
      throw new Error('the Kubernetes bridge is not built yet')
    },
    async view (_alloc: Allocation, _signal: AbortSignal): Promise<EngineView> {
      throw new Error('the Kubernetes bridge is not built yet')
    },
    async down (_alloc: Allocation, _signal: AbortSignal): Promise<void> {
      throw new Error('the Kubernetes bridge is not built yet')
    }
  }
}
