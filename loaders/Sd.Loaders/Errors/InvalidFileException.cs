namespace Sd.Loaders;

/// <summary>
/// A file (model weights, config, tokenizer data, .npy, PNG, ...) that Sd cannot or will not read.
/// The message always names the file and the problem, so a user can act on it without a debugger.
/// </summary>
public class InvalidFileException : IOException
{
    public InvalidFileException(string filePath, string problem, Exception? inner = null)
        : base($"{filePath}: {problem}", inner)
    {
        FilePath = filePath;
        Problem = problem;
    }

    /// <summary>The file that was being read or written.</summary>
    public string FilePath { get; }

    /// <summary>What was wrong, without the file name.</summary>
    public string Problem { get; }
}

/// <summary>
/// A file in a format Sd refuses on purpose: pickled checkpoints (.ckpt/.pt/.bin) can execute arbitrary code when
/// loaded, so they are never opened.
/// </summary>
public sealed class UnsafeFormatException : InvalidFileException
{
    public UnsafeFormatException(string filePath, string problem) : base(filePath, problem) { }
}
