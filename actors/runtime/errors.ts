/**
 * The actor errors and wire statuses are defined with the protocol they
 * travel over (protocols/actor/errors.ts); the runtime imports them from here.
 */
export * from '../../protocols/actor/errors.ts'
export { AbortError, describeError } from '../../protocols/common/errors.ts'
