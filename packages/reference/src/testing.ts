/**
 * Test utilities every attention backend shares (subpath '@webattn/reference/testing'): the conformance cases,
 * the tolerance rule, tensors and expectations for a case, and the PyTorch fixtures loader.
 */
export {
  attentionCases,
  inHalfPrecision,
  selectAttentionCases,
  type AttentionCase,
  type AttentionCaseInputs,
  type AttentionCaseSelection,
  type AttentionFeature,
} from './attention-cases';
export {
  caseExpectation,
  caseTensors,
  checkCaseBackward,
  checkCaseForward,
  compareCaseQuantity,
  type AttentionBackwardValues,
  type AttentionCaseExpectation,
  type AttentionCaseTensors,
  type AttentionForwardValues,
  type AttentionQuantity,
} from './attention-case-check';
export {
  ATTENTION_TOLERANCE,
  attentionTolerance,
  compareAttention,
  expectAttentionClose,
  type AttentionComparison,
  type AttentionToleranceRule,
} from './attention-tolerance';
export {
  fixtureOptions,
  loadTorchSdpaFixtures,
  torchFixturesFolder,
  type TorchSdpaFixture,
} from './torch-fixtures';
