using Sd.Engine.Tensors;

namespace Sd.Engine.Tests;

/// <summary>Seeded test inputs: tensors of values uniform in [-1, 1).</summary>
internal static class RandomTensors
{
    public static Tensor Uniform(int[] shape, int seed)
    {
        Tensor tensor = Tensor.Allocate(shape);
        var random = new Random(seed);
        for (int i = 0; i < tensor.Length; i++) tensor.Span[i] = (float)(2 * random.NextDouble() - 1);
        return tensor;
    }
}
