using System.Globalization;
using Sd.Loaders.IO;

namespace Sd.Cli;

/// <summary>
/// Parsed <c>--flag value</c> / <c>--switch</c> arguments after the command name, plus positionals. Small on purpose:
/// the CLI's flags are a contract (see README), so every command declares the flags it accepts and anything else is
/// an error that names the flag.
/// </summary>
public sealed class CommandLine
{
    private readonly Dictionary<string, string?> _flags = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _repeated = new(StringComparer.Ordinal);
    private readonly List<string> _positionals = new();

    /// <param name="maxPositionals">Bare arguments the command takes (info: its model); one more is a usage error, not
    /// silently dropped.</param>
    /// <param name="repeatable">Value flags that may be given more than once (generate's --lora); read with <see cref="GetAll"/>.</param>
    public CommandLine(string command, IReadOnlyList<string> args, IReadOnlyCollection<string> valueFlags, IReadOnlyCollection<string> switches,
        int maxPositionals = 0, IReadOnlyCollection<string>? repeatable = null)
    {
        Command = command;
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg == "--")
            {
                if (_positionals.Count == maxPositionals)
                {
                    throw new UsageException($"{command}: unexpected argument '{arg}' (options take the form --name value; see `sd {command} --help`)");
                }
                _positionals.Add(arg);
                continue;
            }
            string name = arg;
            string? inline = null;
            int eq = arg.IndexOf('=');
            if (eq > 0)
            {
                name = arg[..eq];
                inline = arg[(eq + 1)..];
            }
            if (switches.Contains(name) && inline is null)
            {
                _flags[name] = null;
            }
            else if (valueFlags.Contains(name) || repeatable?.Contains(name) == true)
            {
                string value = inline ?? (i + 1 < args.Count ? args[++i] : throw new UsageException($"{command}: {name} needs a value"));
                if (repeatable?.Contains(name) == true)
                {
                    if (!_repeated.TryGetValue(name, out List<string>? values))
                    {
                        _repeated.Add(name, values = new List<string>());
                    }
                    values.Add(value);
                }
                else if (!_flags.TryAdd(name, value))
                {
                    throw new UsageException($"{command}: {name} given twice");
                }
            }
            else
            {
                throw new UsageException($"{command}: unknown option '{name}' (see `sd {command} --help`)");
            }
        }
    }

    public string Command { get; }

    public IReadOnlyList<string> Positionals => _positionals;

    public bool Has(string flag) => _flags.ContainsKey(flag) || _repeated.ContainsKey(flag);

    /// <summary>Every value of a repeatable flag, in the order given (none when absent).</summary>
    public IReadOnlyList<string> GetAll(string flag) => _repeated.TryGetValue(flag, out List<string>? values) ? values : [];

    public string? Get(string flag) => _flags.TryGetValue(flag, out string? value) ? value : null;

    public string Require(string flag) =>
        Get(flag) ?? throw new UsageException($"{Command}: {flag} is required");

    /// <summary>An integer option, or <paramref name="fallback"/> when absent; a malformed value is a usage error.</summary>
    public int GetInt(string flag, int fallback) =>
        Get(flag) is not { } text ? fallback
        : int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) ? value
        : throw new UsageException($"{Command}: {flag} expects an integer, got '{text}'");

    /// <summary>
    /// Checks the files a command will write before it does any work (a generation takes minutes): each path names a
    /// file in a folder that exists, not a folder or a device (<see cref="AtomicFile.CheckTarget"/>), a file can be
    /// created there (<see cref="AtomicFile.CheckWritable"/>), and no two outputs are the same file. A problem is a
    /// usage error naming the flag.
    /// </summary>
    public void CheckOutputs(IEnumerable<(string Flag, string Path)> outputs)
    {
        var seen = new Dictionary<string, string>(OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal);
        foreach ((string flag, string path) in outputs)
        {
            string target;
            try
            {
                target = AtomicFile.CheckTarget(path);
                AtomicFile.CheckWritable(path, target);
            }
            catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException)
            {
                throw new UsageException($"{Command}: {flag}: {Program.Describe(e)}");
            }
            if (!seen.TryAdd(target, flag))
            {
                throw new UsageException($"{Command}: {seen[target]} and {flag} would both write {target}");
            }
        }
    }

    /// <summary>
    /// Checks that the picture outputs among <paramref name="flags"/> that are given are named .png (any case): Sd
    /// writes PNG (which carries the parameters), and PNG bytes under another name would pass for what they are not.
    /// </summary>
    public void CheckPngNames(params string[] flags)
    {
        foreach (string flag in flags)
        {
            if (Get(flag) is { } path && !Path.GetExtension(path).Equals(".png", StringComparison.OrdinalIgnoreCase))
            {
                throw new UsageException($"{Command}: {flag} '{path}': pictures are written as PNG; give a name ending in .png");
            }
        }
    }

    /// <summary><see cref="CheckOutputs(IEnumerable{ValueTuple{string, string}})"/> for the flags given among <paramref name="flags"/>.</summary>
    public void CheckOutputFlags(params string[] flags)
    {
        var outputs = new List<(string, string)>();
        foreach (string flag in flags)
        {
            if (Get(flag) is { } path)
            {
                outputs.Add((flag, path));
            }
        }
        CheckOutputs(outputs);
    }

    /// <summary>A finite number option as a double (what a Python float is, for settings compared with A1111's and
    /// diffusers' arithmetic), or <paramref name="fallback"/> when absent.</summary>
    public double GetDouble(string flag, double fallback) => Get(flag) is not { } text ? fallback : ParseDouble(flag, text);

    /// <summary>One value of <paramref name="flag"/> as a finite double (a repeatable flag's, from <see cref="GetAll"/>).</summary>
    public double ParseDouble(string flag, string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value) ? value
        : throw new UsageException($"{Command}: {flag} expects a number, got '{text}'");

    /// <summary>A finite number option, or <paramref name="fallback"/> when absent.</summary>
    public float GetFloat(string flag, float fallback) => Get(flag) is not { } text ? fallback : ParseFloat(flag, text);

    /// <summary>One value of <paramref name="flag"/> as a finite number (a repeatable flag's, from <see cref="GetAll"/>).</summary>
    public float ParseFloat(string flag, string text) =>
        float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float value) && float.IsFinite(value) ? value
        : throw new UsageException($"{Command}: {flag} expects a number, got '{text}'");
}

/// <summary>Bad command-line usage: printed without a stack trace, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
