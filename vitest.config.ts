import { defineConfig } from 'vitest/config'

// Three layers: pure units; real libp2p nodes in one process; real zp-node
// processes. At most two files run at once (each multi-process file already
// starts several Node processes, and this must pass on a loaded 2-core
// machine): the process files' deadlines on polled conditions are generous
// enough for a machine shared by two of them.
export default defineConfig({
  test: {
    maxWorkers: 2,
    // stops the engine clusters (Slurm) the run's files started; stopping takes seconds
    globalSetup: ['test/clusters/global-setup.ts'],
    teardownTimeout: 60_000,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 20_000 } },
      { test: { name: 'mesh', include: ['test/mesh/**/*.test.ts'], testTimeout: 90_000, hookTimeout: 60_000 } },
      { test: { name: 'process', include: ['test/process/**/*.test.ts'], setupFiles: ['test/process/openapi-setup.ts'], testTimeout: 180_000, hookTimeout: 120_000 } }
    ]
  }
})
