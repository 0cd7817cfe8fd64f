namespace Sd.Loaders;

/// <summary>
/// Refuses PyTorch pickles (.ckpt, .pt, .pth, .bin): unpickling runs arbitrary code from the file, so Sd never
/// opens one. Detected by extension and, for mislabelled files, by the zip ("PK\x03\x04") or pickle-protocol
/// (0x80 0x02..0x05) magic.
/// </summary>
public static class PickleGuard
{
    private const string Advice =
        "pickled PyTorch checkpoints can execute arbitrary code when loaded, so Sd refuses them; " +
        "convert the model to .safetensors (e.g. diffusers' convert scripts or `safetensors.torch.save_file`) and load that";

    public static bool HasPickleExtension(string path)
    {
        string extension = Path.GetExtension(path).ToLowerInvariant();
        return extension is ".ckpt" or ".pt" or ".pth" or ".bin" or ".pkl" or ".pickle";
    }

    public static void RefuseByExtension(string path)
    {
        if (HasPickleExtension(path))
        {
            throw new UnsafeFormatException(path, Advice);
        }
    }

    /// <summary>Checks the first bytes of a file that claims another format.</summary>
    public static void RefuseByMagic(string path, ReadOnlySpan<byte> firstBytes)
    {
        bool zip = firstBytes.Length >= 4 && firstBytes[0] == (byte)'P' && firstBytes[1] == (byte)'K'
            && firstBytes[2] == 3 && firstBytes[3] == 4;
        bool pickle = firstBytes.Length >= 2 && firstBytes[0] == 0x80 && firstBytes[1] is >= 2 and <= 5;
        if (zip || pickle)
        {
            throw new UnsafeFormatException(path, "file content is a " + (zip ? "zip (torch.save) archive" : "Python pickle") + ": " + Advice);
        }
    }
}
