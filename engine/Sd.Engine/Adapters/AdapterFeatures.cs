using Sd.Engine.Tensors;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.Adapters;

/// <summary>
/// What T2I-Adapters add inside a UNet pass: one feature per down block, in order (the UNet adds feature i to down
/// block i's output, diffusers' down_intrablock_additional_residuals), each NHWC [1, h, w, c] and added to every image
/// of the batch, as diffusers repeats the adapter state for the batch and both halves of classifier-free guidance.
/// Made by <see cref="T2IAdapterModel.Forward"/>; several adapters' features add up (diffusers' MultiAdapter).
/// </summary>
public sealed class AdapterFeatures : IDisposable
{
    private readonly Tensor[] _features;

    internal AdapterFeatures(Tensor[] features) => _features = features;

    /// <summary>Features, one per down block from the first.</summary>
    public int Count => _features.Length;

    /// <summary>Feature <paramref name="index"/>, [1, h, w, c] (owned by this object).</summary>
    public Tensor this[int index] => _features[index];

    /// <summary>Adds <paramref name="other"/>'s features to these (the same shapes), as MultiAdapter sums its adapters'.</summary>
    public void Add(AdapterFeatures other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Count != Count)
        {
            throw new ArgumentException($"adapters of {Count} and {other.Count} features cannot be added", nameof(other));
        }
        for (int i = 0; i < Count; i++)
        {
            if (!_features[i].Shape.SequenceEqual(other._features[i].Shape))
            {
                throw new ArgumentException($"feature {i} is {_features[i]} here and {other._features[i]} there", nameof(other));
            }
            Pointwise.Add(_features[i].Span, other._features[i].Span, _features[i].Span);
        }
    }

    public void Dispose()
    {
        foreach (Tensor feature in _features) feature.Dispose();
    }
}
