using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Layout;

/// <summary>
/// Checks that a config describes a checkpoint: the tensors the config implies (<see cref="DiffusersLayout"/>)
/// against those present, by name and shape. A config given for a single-file checkpoint is checked when the file is
/// opened, so a wrong one fails there (also in <c>sd info</c>) with a message that names the config, rather than when
/// a component is built, with only a tensor name.
/// </summary>
public static class LayoutFit
{
    private const int Examples = 3;

    /// <summary>Throws an <see cref="InvalidFileException"/> naming <paramref name="configPath"/> on any difference.</summary>
    public static void Require(WeightSet weights, IReadOnlyList<ParameterSpec> expected, string configPath)
    {
        var problems = new List<string>();
        var implied = new HashSet<string>(StringComparer.Ordinal);
        foreach (ParameterSpec parameter in expected)
        {
            implied.Add(parameter.Name);
            if (!weights.TryGet(parameter.Name, out TensorEntry entry))
            {
                problems.Add($"'{parameter.Name}' {TensorInfo.ShapeText(parameter.Shape)} is missing from the checkpoint");
            }
            else if (!entry.Shape.AsSpan().SequenceEqual(parameter.Shape))
            {
                problems.Add($"'{parameter.Name}' is {TensorInfo.ShapeText(entry.Shape)} in the checkpoint, {TensorInfo.ShapeText(parameter.Shape)} by the config");
            }
        }
        foreach (TensorEntry entry in weights.Entries)
        {
            // Integer buffers (position_ids) are bookkeeping, not weights any config describes.
            if (!implied.Contains(entry.Name) && !entry.DType.IsInteger())
            {
                problems.Add($"'{entry.Name}' is in the checkpoint but not in the config's model");
            }
        }
        if (problems.Count > 0)
        {
            throw new InvalidFileException(configPath,
                $"does not fit the checkpoint's tensors ({weights.Source}): {problems.Count} differ, e.g. {string.Join("; ", problems.Take(Examples))}");
        }
    }
}
