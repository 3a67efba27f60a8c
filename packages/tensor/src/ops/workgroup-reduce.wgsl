// Tree reductions across one workgroup of THREADS invocations, through the workgroup array `partial`. They contain
// barriers: every invocation of the workgroup must call them (uniform control flow), and each gets the result.
// Composed in front of the kernels that reduce rows (reduce, softmax, layer-norm).

const THREADS = 64u;

var<workgroup> partial: array<f32, THREADS>;

fn workgroup_sum(value: f32, lane: u32) -> f32 {
  partial[lane] = value;
  workgroupBarrier();
  for (var stride = THREADS / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  let result = partial[0];
  workgroupBarrier();
  return result;
}

fn workgroup_max(value: f32, lane: u32) -> f32 {
  partial[lane] = value;
  workgroupBarrier();
  for (var stride = THREADS / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      partial[lane] = max(partial[lane], partial[lane + stride]);
    }
    workgroupBarrier();
  }
  let result = partial[0];
  workgroupBarrier();
  return result;
}
