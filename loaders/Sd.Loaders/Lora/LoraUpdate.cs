namespace Sd.Loaders.Lora;

/// <summary>How a module's factors make its update.</summary>
public enum LoraUpdateKind
{
    /// <summary>The first factor itself: LoRA/LoCon (a product) or a full difference (stored whole).</summary>
    Single,

    /// <summary>The two factors multiplied element by element: LyCORIS LoHa.</summary>
    Hadamard,

    /// <summary>The Kronecker product of the two factors: LyCORIS LoKr.</summary>
    Kronecker,
}

/// <summary>
/// The change a module makes to one tensor of the model, read as [<see cref="Rows"/>, <see cref="Columns"/>]: the
/// tensor's first size by the product of the others, so a [out, in x kh x kw] update fits a conv weight as A1111
/// reshapes it. Where a factor states a kernel size (a 4-D tensor), the weight's must be the same.
/// For a Kronecker product of A [a, b] and B [c, d] the update is [a x c, b x d] with update[i c + k, j d + l] =
/// A[i, j] B[k, l] (B's columns are in x kh x kw for a conv: torch.kron of A [a, b, 1, 1] and B [c, d, kh, kw]).
/// </summary>
public sealed class LoraUpdate
{
    private LoraUpdate(LoraUpdateKind kind, LoraFactor first, LoraFactor? second, long rows, long columns, long kernelHeight, long kernelWidth)
    {
        Kind = kind;
        First = first;
        Second = second;
        Rows = rows;
        Columns = columns;
        KernelHeight = kernelHeight;
        KernelWidth = kernelWidth;
    }

    public LoraUpdateKind Kind { get; }

    public LoraFactor First { get; }

    /// <summary>The second factor of a Hadamard or Kronecker update; null for a single one.</summary>
    public LoraFactor? Second { get; }

    public long Rows { get; }

    public long Columns { get; }

    /// <summary>The kernel size the update states; 0 when it states none (any weight of its flattened size fits).</summary>
    public long KernelHeight { get; }

    public long KernelWidth { get; }

    internal static LoraUpdate Single(LoraFactor factor) =>
        new(LoraUpdateKind.Single, factor, null, factor.Rows, factor.Columns, factor.KernelHeight, factor.KernelWidth);

    internal static LoraUpdate Hadamard(string path, string key, LoraFactor first, LoraFactor second)
    {
        bool statedApart = first.KernelHeight != 0 && second.KernelHeight != 0
            && (first.KernelHeight != second.KernelHeight || first.KernelWidth != second.KernelWidth);
        if (first.Rows != second.Rows || first.Columns != second.Columns || statedApart)
        {
            throw new InvalidFileException(path,
                $"LoRA module '{key}' (LoHa) has factors of {Size(first)} and {Size(second)}; their element-wise product needs one size");
        }
        LoraFactor stating = first.KernelHeight != 0 ? first : second;
        return new LoraUpdate(LoraUpdateKind.Hadamard, first, second, first.Rows, first.Columns, stating.KernelHeight, stating.KernelWidth);
    }

    internal static LoraUpdate Kronecker(string path, string key, LoraFactor first, LoraFactor second)
    {
        if (first.KernelHeight != 0)
        {
            throw new InvalidFileException(path, $"LoRA module '{key}' (LoKr) has a first factor of {Size(first)} with a kernel; expected a matrix (lokr_w1 [a, b])");
        }
        return new LoraUpdate(LoraUpdateKind.Kronecker, first, second, LoraFactor.Saturating(first.Rows, second.Rows),
            LoraFactor.Saturating(first.Columns, second.Columns), second.KernelHeight, second.KernelWidth);
    }

    public override string ToString() => $"{Kind} {Size(this)}";

    private static string Size(LoraFactor f) => Text(f.Rows, f.Columns, f.KernelHeight, f.KernelWidth);

    private static string Size(LoraUpdate u) => Text(u.Rows, u.Columns, u.KernelHeight, u.KernelWidth);

    private static string Text(long rows, long columns, long kh, long kw) => kh == 0 ? $"[{rows}, {columns}]" : $"[{rows}, {columns / (kh * kw)}, {kh}, {kw}]";
}
