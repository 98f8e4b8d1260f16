import type { Suite } from '../suite.ts'
import { actorSuite } from './actor.ts'
import { blobSuite } from './blob.ts'
import { bridgeSuite } from './bridge.ts'
import { campaignSuite } from './campaign.ts'
import { joinSuite } from './join.ts'
import { onnxSuite } from './onnx.ts'
import { recoverySuite } from './recovery.ts'

/** Every suite, in the order `npm run bench` runs them and the results README lists them. */
export const SUITES: Suite[] = [actorSuite, joinSuite, blobSuite, campaignSuite, onnxSuite, recoverySuite, bridgeSuite]
