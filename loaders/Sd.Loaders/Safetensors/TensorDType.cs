namespace Sd.Loaders.Safetensors;

/// <summary>
/// Every dtype the safetensors format defines. The header parser accepts all of them (so <c>sd info</c> can describe
/// any file); reading values is limited to <see cref="TensorDTypes.IsReadable"/> and refused with a clear message
/// otherwise.
/// </summary>
public enum TensorDType
{
    F32,
    F16,
    BF16,
    I64,
    I32,
    F64,
    I16,
    I8,
    U8,
    U16,
    U32,
    U64,
    Bool,
    F8E4M3,
    F8E5M2,
}

public static class TensorDTypes
{
    public static bool TryParse(string text, out TensorDType dtype)
    {
        switch (text)
        {
            case "F32": dtype = TensorDType.F32; return true;
            case "F16": dtype = TensorDType.F16; return true;
            case "BF16": dtype = TensorDType.BF16; return true;
            case "I64": dtype = TensorDType.I64; return true;
            case "I32": dtype = TensorDType.I32; return true;
            case "F64": dtype = TensorDType.F64; return true;
            case "I16": dtype = TensorDType.I16; return true;
            case "I8": dtype = TensorDType.I8; return true;
            case "U8": dtype = TensorDType.U8; return true;
            case "U16": dtype = TensorDType.U16; return true;
            case "U32": dtype = TensorDType.U32; return true;
            case "U64": dtype = TensorDType.U64; return true;
            case "BOOL": dtype = TensorDType.Bool; return true;
            case "F8_E4M3": dtype = TensorDType.F8E4M3; return true;
            case "F8_E5M2": dtype = TensorDType.F8E5M2; return true;
            default: dtype = default; return false;
        }
    }

    public static int SizeInBytes(this TensorDType dtype) => dtype switch
    {
        TensorDType.F64 or TensorDType.I64 or TensorDType.U64 => 8,
        TensorDType.F32 or TensorDType.I32 or TensorDType.U32 => 4,
        TensorDType.F16 or TensorDType.BF16 or TensorDType.I16 or TensorDType.U16 => 2,
        _ => 1,
    };

    /// <summary>Float weights Sd widens to float32 (F32, F16, BF16).</summary>
    public static bool IsFloatWeight(this TensorDType dtype) =>
        dtype is TensorDType.F32 or TensorDType.F16 or TensorDType.BF16;

    /// <summary>Index buffers Sd reads as int64 (I64, I32).</summary>
    public static bool IsInteger(this TensorDType dtype) => dtype is TensorDType.I64 or TensorDType.I32;

    public static bool IsReadable(this TensorDType dtype) => dtype.IsFloatWeight() || dtype.IsInteger();

    public static string Name(this TensorDType dtype) => dtype switch
    {
        TensorDType.Bool => "BOOL",
        TensorDType.F8E4M3 => "F8_E4M3",
        TensorDType.F8E5M2 => "F8_E5M2",
        _ => dtype.ToString(),
    };
}
